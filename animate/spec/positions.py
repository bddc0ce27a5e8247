"""Reading script text (YAML, JSON, TOML) into data, and where each value is written.

`positions` maps a path such as ("clips", 2, "adapters", 1, "weight") to the (line, column) of its value,
and path + ("__key__",) to the (line, column) of its key. Numeric keys are stored as int and as str.
YAML is read with a safe loader that refuses anchors, aliases and deep nesting.
"""
from __future__ import annotations

import bisect
import functools
import json
import re
from typing import Any

from animate.errors import ConfigError
import yaml
from json.decoder import scanstring

MAX_SCRIPT_BYTES = 2_000_000
MAX_DEPTH = 32  # a real script nests about 7 levels (clips → pose → source → keyframe → points)


class _Refused(Exception):
    """A parse-time problem with a position (raised inside the parsers, turned into a ConfigError)."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint


def located(where: str, pos: tuple[int, int] | None) -> str:
    """`file:line:col`, or just `file` when the position is unknown."""
    return f"{where}:{pos[0]}:{pos[1]}" if pos else where


def _record(positions: dict, path: tuple, pos: tuple[int, int], key_pos: tuple[int, int] | None = None) -> None:
    paths = [path]
    if path and isinstance(path[-1], str) and re.fullmatch(r"-?\d{1,9}", path[-1]):
        paths.append(path[:-1] + (int(path[-1]),))
    elif path and isinstance(path[-1], int) and not isinstance(path[-1], bool):
        paths.append(path[:-1] + (str(path[-1]),))
    for p in paths:
        positions.setdefault(p, pos)
        if key_pos:
            positions.setdefault(p + ("__key__",), key_pos)


@functools.lru_cache(maxsize=None)
def _yaml_loader():
    class ScriptLoader(yaml.SafeLoader):
        """The safe loader, refusing anchors and aliases (cheap 'billion laughs' bombs) and deep nesting."""

        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            mark = event.start_mark
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused("YAML anchors and aliases are not allowed in scripts", mark.line + 1,
                               mark.column + 1, "write the value out, or put shared settings under `defaults:`")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return ScriptLoader


def _parse_yaml(text: str) -> tuple[Any, dict, list]:
    loader = None
    try:
        loader = _yaml_loader()(text)  # the reader checks for unprintable characters here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        if exc.context and exc.problem and "expected a single document" in exc.context:
            problem = "a script is one YAML document; remove the extra `---`"
        elif exc.context and exc.problem and exc.context_mark and exc.context_mark is not mark:
            cm = exc.context_mark
            problem += f" {exc.context} (which starts at line {cm.line + 1}, column {cm.column + 1})"
        raise _Refused(f"invalid YAML: {problem}", *((mark.line + 1, mark.column + 1) if mark else ())) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise _Refused(f"invalid YAML: character {char!r} is not allowed", line, col) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None
    except ValueError as exc:  # timestamps like 2001-02-30, integers with more than 4300 digits
        raise _Refused(f"invalid YAML value: {str(exc).split(':')[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()

    positions: dict = {}
    duplicates: list = []

    def walk(node, path, key_pos=None):
        _record(positions, path, (node.start_mark.line + 1, node.start_mark.column + 1), key_pos)
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else None
                if isinstance(k, str) and key.tag.endswith(":int") and re.fullmatch(r"[-+]?\d{1,9}", k):
                    k = int(k)
                kp = (key.start_mark.line + 1, key.start_mark.column + 1)
                if k is not None and (key.tag, key.value) in seen:
                    duplicates.append((path + (k,), kp, f"duplicate key `{key.value}` (first at line "
                                                        f"{seen[(key.tag, key.value)]}); keep one"))
                    continue
                seen[(key.tag, key.value)] = kp[0]
                walk(value, path + (k,), kp)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if node is not None:
        walk(node, ())
    return data, positions, duplicates


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_ATOM = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


def _json_positions(text: str) -> tuple[dict, list]:
    """Positions of every value in JSON text that `json.loads` already accepted; also duplicate keys."""

    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    positions: dict = {}
    duplicates: list = []

    def lc(i):
        n = bisect.bisect_right(starts, i)
        return n, i - starts[n - 1] + 1

    def value(i, path, depth, key_pos=None):
        i = _JSON_WS.match(text, i).end()
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", *lc(i))
        _record(positions, path, lc(i), key_pos)
        c = text[i]
        if c == '"':
            return scanstring(text, i + 1)[1]
        if c in "{[":
            close = "}" if c == "{" else "]"
            i = _JSON_WS.match(text, i + 1).end()
            if text[i] == close:
                return i + 1
            index, seen = 0, {}
            while True:
                if c == "{":
                    kp = lc(i)
                    key, i = scanstring(text, i + 1)
                    i = _JSON_WS.match(text, i).end() + 1  # the colon
                    if key in seen:
                        duplicates.append((path + (key,), kp, f"duplicate key `{key}` (first at line "
                                                               f"{seen[key]}); keep one"))
                        i = value(i, ("__duplicate__",), depth + 1)
                    else:
                        seen[key] = kp[0]
                        i = value(i, path + (key,), depth + 1, kp)
                else:
                    i = value(i, path + (index,), depth + 1)
                    index += 1
                i = _JSON_WS.match(text, i).end()
                if text[i] == close:
                    return i + 1
                i = _JSON_WS.match(text, i + 1).end()  # after the comma
        return _JSON_ATOM.match(text, i).end()

    value(0, (), 0)
    return positions, duplicates


def _parse_json(text: str) -> tuple[Any, dict, list]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON: {exc.msg[:1].lower()}{exc.msg[1:]}", exc.lineno, exc.colno) from None
    except ValueError as exc:  # integers with more than 4300 digits
        raise _Refused(f"invalid JSON value: {str(exc).split(':')[0]}") from None
    positions, duplicates = _json_positions(text)
    return data, positions, duplicates


_TOML_TABLE = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)"
                       r"\s*=\s*")


def _toml_keys(dotted: str) -> tuple:
    return tuple(p.strip().strip("\"'") for p in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", dotted))


def _toml_positions(text: str) -> dict:
    """Line and column of each `key = value` and table header (tables and keys on their own lines)."""
    positions: dict = {}
    counts: dict = {}  # array-of-tables path → its last index
    table: tuple = ()

    def resolved(keys):
        out = ()
        for k in keys:
            out += (k,)
            if out in counts:
                out += (counts[out],)
        return out

    for n, line in enumerate(text.splitlines(), 1):
        m = _TOML_TABLE.match(line)
        if m and not _TOML_KEY.match(line):
            keys = _toml_keys(m.group(2))
            if m.group(1) == "[[":
                base = resolved(keys[:-1]) + (keys[-1],)
                counts[base] = counts.get(base, -1) + 1
                table = base + (counts[base],)
            else:
                table = resolved(keys)
            _record(positions, table, (n, m.start(2) + 1))
            continue
        m = _TOML_KEY.match(line)
        if m:
            _record(positions, table + _toml_keys(m.group(1)), (n, m.end() + 1), (n, m.start(1) + 1))
    return positions


def _parse_toml(text: str) -> tuple[Any, dict, list]:
    try:
        import tomllib  # TOML reader: by Python version
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg) or re.search(r"\s*\(at end of document\)$", msg)
        pos = (int(m.group(1)), int(m.group(2))) if m and m.groups() else ()
        msg = msg[:m.start()] if m else msg
        raise _Refused(f"invalid TOML: {msg[:1].lower()}{msg[1:]}", *pos) from None
    except ValueError as exc:
        raise _Refused(f"invalid TOML value: {str(exc).split(':')[0]}") from None
    return data, _toml_positions(text), []


def raw_problems(data: Any) -> list[tuple[tuple, str]]:
    """Problems pydantic does not see: nesting depth and NUL characters (walked without recursion)."""
    out = []
    stack = [((), data)]
    while stack:
        path, node = stack.pop()
        if len(path) > MAX_DEPTH:
            out.append((path[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(node, str) and "\x00" in node:
            out.append((path, "text holds a NUL character"))
        elif isinstance(node, dict):
            stack.extend((path + (k,), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(node))))
    return out


def parse(text: str, suffix: str, where: str, *, max_bytes: int | None = MAX_SCRIPT_BYTES) -> tuple[Any, dict, list]:
    """(data, positions, duplicate keys as (path, position, message)) of script text of at most `max_bytes`
    (None: any size), read by its suffix."""
    if max_bytes is not None and (len(text) > max_bytes or len(text.encode("utf-8", "replace")) > max_bytes):
        raise ConfigError(f"script is larger than {max_bytes / 1_000_000:g} MB", where=where,
                          hint="split it into several scripts, or raise the limit with --limit script=SIZE")
    if "\x00" in text:
        raise ConfigError("script is binary, not text", where=where, hint="give a YAML, JSON or TOML file")
    if not text.strip():
        raise ConfigError("script is empty", where=where, hint="start from an example in presets/examples/")
    parser = {".json": _parse_json, ".toml": _parse_toml}.get(suffix.lower(), _parse_yaml)
    try:
        return parser(text)
    except _Refused as exc:
        where = f"{where}:{exc.line}:{exc.col}" if exc.line else where
        raise ConfigError(exc.message, where=where, hint=exc.hint) from None
    except RecursionError:
        raise ConfigError(f"nested too deeply (the limit is {MAX_DEPTH} levels)", where=where) from None


def lookup(positions: dict, loc: tuple, key: bool = False) -> tuple[int, int] | None:
    """Where `loc` (or, failing that, the nearest enclosing value) is written; its key's place if `key`."""
    if key and loc + ("__key__",) in positions:
        return positions[loc + ("__key__",)]
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return None
