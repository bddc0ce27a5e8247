"""Validation errors as lines people can act on: `file:line:col: field.path: message`, one per problem,
with union branches folded into one message and a "did you mean" for unknown fields."""
from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .positions import located, lookup
from .schema import ClipFields, ScriptModel
from .values import loc_text, show

# Common names from other tools → our field.
SYNONYMS = {
    "cfg": "guidance", "cfg_scale": "guidance", "guidance_scale": "guidance", "num_inference_steps": "steps",
    "sampler": "scheduler", "num_frames": "frames", "length": "frames", "negative_prompt": "negative",
    "lora": "adapters", "loras": "adapters", "motion_module": "motion_adapter", "checkpoint": "model",
    "base_model": "model", "seeds": "seed", "format": "outputs", "formats": "outputs", "output": "outputs",
    "controlnet": "pose", "strength": "weight", "scale": "weight", "path": "source", "clip": "clips",
}
_TYPE_NAMES = {
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping",
}
# pydantic puts union branch names (`str`, `SourceSpec`, `list[...]`, `function-after[...]`) in locations.
_TAG = re.compile(r"[\[\]]|^(str|int|float|bool|list|dict|none|constrained-|function-|lax-or-strict|"
                  r"json-or-python|tagged-union|nullable|[A-Z])")


def _real_loc(raw: tuple, data: Any) -> tuple[tuple, tuple | None, bool]:
    """The location in the user's data, where a union was tried (or None), and whether it is a key error."""
    node, out, union_at, known, key_error = data, [], None, True, False
    for part in raw:
        if part == "[key]":
            key_error = True
            continue
        if known and isinstance(node, dict):
            for k in (part, str(part)) + ((int(part),) if isinstance(part, str) and part.isdigit() else ()):
                if k in node:
                    node = node[k]
                    out.append(part)
                    break
            else:
                k = None
            if k is not None:
                continue
        if known and isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
            continue
        if isinstance(part, str) and _TAG.search(part):
            if union_at is None:
                union_at = tuple(out)
            continue
        out.append(part)
        known = False
    return tuple(out), union_at, key_error


def _model_for(loc: tuple):
    """The pydantic model class that holds fields at `loc` (for did-you-mean)."""
    model = ScriptModel
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_field(loc: tuple, root) -> str:
    key = str(loc[-1])
    parent = root if len(loc) == 1 else _model_for_root(root, loc[:-1])
    names = [n for n in parent.model_fields if n != "description" or parent is ClipFields] if parent else []
    names += list(getattr(parent, "beside_source", ()))
    msg = "unknown field"
    if not names:
        return msg
    close = [n for n in names if n.lower() == key.lower().replace("-", "_").replace(" ", "_")]
    if not close and SYNONYMS.get(key.lower()) in names:
        close = [SYNONYMS[key.lower()]]
    close = close or difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
    if close:
        return f"{msg}; did you mean `{close[0]}`?"
    if len(names) <= 10:
        return f"{msg}; fields here: {', '.join(names)}"
    return f"{msg}; `animate schema` lists every field"


def _model_for_root(root, loc: tuple):
    if root is None:  # a plain type, not a model (a recorded spec's values)
        return None
    if root is ScriptModel:
        return _model_for(loc)
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
        if model is None:
            return None
    return model


def message(err: dict, loc: tuple, root) -> str:
    """One pydantic error as a message that says what is expected and what was given."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field(loc, root)
    if kind == "missing":
        if loc == ("clips",):
            return "required field is missing; list the clips to render under `clips:`"
        return "required field is missing"
    if kind == "invalid_key":
        return "keys must be text"
    if kind in _TYPE_NAMES:
        if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
            return f"number is too large (got {show(value)})"
        return f"must be {_TYPE_NAMES[kind]} (got {show(value)})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        close = difflib.get_close_matches(str(value), re.findall(r"'([^']*)'", expected), n=1)
        hint = f"; did you mean `{close[0]}`?" if close and isinstance(value, str) else ""
        return f"must be {expected} (got {show(value)}){hint}"
    if kind in ("too_short", "string_too_short"):
        if kind == "string_too_short" or isinstance(value, str):
            return "must not be empty"
        what = "clip" if loc == ("clips",) else "item"
        n = ctx.get("min_length", 1)
        return f"must list at least {n} {what}{'s' if n != 1 else ''} (got {len(value) if value is not None else 0})"
    if kind in ("too_long", "string_too_long"):
        n = ctx.get("max_length")
        unit = "characters" if isinstance(value, str) else "items"
        return f"must have at most {n} {unit} (got {len(value) if hasattr(value, '__len__') else '?'})"
    if kind == "range":
        return f"{err['msg']} (got {show(value)})"
    if kind == "finite_number":
        return f"must be a finite number (got {show(value)})"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[:1].lower() + msg[1:]
    return msg if "(got" in msg or show(value) in msg else f"{msg} (got {show(value)})"


def validation_problems(exc: ValidationError, data: Any, root=ScriptModel) -> list[tuple[tuple, str]]:
    """(location, message) for each problem, with union branches folded into one message."""
    items = []
    for err in exc.errors():
        if err["type"] in ("clip_names", "adapter_names"):  # reported with positions by cross_checks
            continue
        loc, union_at, key_error = _real_loc(err["loc"], data)
        items.append((loc, union_at, key_error, err))
    out: list[tuple[tuple, str]] = []
    for loc, union_at, key_error, err in items:
        if key_error and err["type"] in _TYPE_NAMES:
            if len(loc) > 1 and loc[-2] in ("weight", "scale"):  # a {progress: value} schedule
                out.append((loc, f"schedule keys must be denoising progress from 0.0 to 1.0 (got {show(loc[-1])})"))
            else:
                out.append((loc, f"keyframe keys must be frame numbers (got {show(loc[-1])})"))
            continue
        if key_error:
            out.append((loc, message(err, loc, root)))
            continue
        shallow = lambda it: it[0] == it[1] and it[3]["type"] in _TYPE_NAMES  # noqa: E731
        if union_at is None:
            out.append((loc, message(err, loc, root)))
            continue
        group = [it for it in items if it[1] == union_at]
        me = (loc, union_at, key_error, err)
        if any(not shallow(it) for it in group):
            if not shallow(me):
                out.append((loc, message(err, loc, root)))
            continue
        if err is group[0][3]:
            kinds = []
            for it in group:
                name = _TYPE_NAMES[it[3]["type"]]
                if name not in kinds:
                    kinds.append(name)
            out.append((union_at, f"must be {' or '.join(kinds)} (got {show(err.get('input'))})"))
    return out


def error_lines(found: list[tuple], where: str, positions: dict) -> list[str]:
    """`file:line:col: path: message` for each (path, message[, position]), deduplicated, in order."""
    lines = []
    for loc, msg, *known in found:
        pos = known[0] if known else lookup(positions, loc, key=msg.startswith(("unknown field", "keys must")))
        head = located(where, pos)
        line = f"{head}: {loc_text(loc)}: {msg}" if loc else f"{head}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def format_errors(exc: ValidationError, where: str, positions: dict, data: Any, prefix: tuple = (),
                  root=ScriptModel) -> list[str]:
    """One line per problem, deduplicated across union branches."""
    return error_lines([(prefix + loc, msg) for loc, msg in validation_problems(exc, data, root)], where, positions)


def short_error(exc: ValidationError) -> str:
    """The first error, plainly (when no location in the user's data can be found)."""
    first = exc.errors()[0] if exc.errors() else {}
    return f"{loc_text(tuple(first.get('loc', ())))}: {first.get('msg', str(exc))}"
