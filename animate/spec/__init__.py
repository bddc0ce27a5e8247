"""Prompt scripts as data: the schema, reading YAML/JSON/TOML with positions, error lines, presets and
resolution, and ClipSpec, the resolved render that everything downstream carries.

    values.py     value types and checks shared by the schema and ClipSpec
    clipspec.py   ClipSpec (plain dataclass; to_dict/from_dict) and its plain fields
    schema.py     pydantic models of a script (frozen, unknown keys forbidden)
    positions.py  parsing YAML/JSON/TOML with the line:col of every value
    lines.py      validation errors as `file:line:col: field: message` lines
    resolve.py    loading scripts, presets, layered resolution into ClipSpecs
"""
from animate.spec.clipspec import PLAIN, ClipSpec, plain
from animate.spec.lines import format_errors
from animate.spec.positions import MAX_DEPTH, MAX_SCRIPT_BYTES
from animate.spec.resolve import (BUILTIN, Script, list_presets, load_preset, load_script, parse_script, parse_text,
                      presets_dir, resolve, spec_from_fields)
from animate.spec.schema import ClipFields, ClipModel, ReelSpec, ScriptModel, json_schema
from animate.spec.subspecs import AdapterSpec, Frozen, PoseSpec, SourceSpec, WeightRamp
from animate.spec.values import MAX_SEED, OUTPUT_FORMATS, name_problem
from animate.util.names import NAME_RE, slug

__all__ = [
    "BUILTIN", "MAX_DEPTH", "MAX_SCRIPT_BYTES", "MAX_SEED", "NAME_RE", "OUTPUT_FORMATS", "PLAIN", "AdapterSpec",
    "ClipFields", "ClipModel", "ClipSpec", "Frozen", "PoseSpec", "ReelSpec", "Script", "ScriptModel", "SourceSpec",
    "WeightRamp", "format_errors", "json_schema", "list_presets", "load_preset", "load_script", "name_problem",
    "parse_script", "parse_text", "plain", "presets_dir", "resolve", "slug", "spec_from_fields",
]
