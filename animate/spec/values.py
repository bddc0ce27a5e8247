"""Value types shared by the schema and ClipSpec: ranges, names, formats, prompts, free-form data, and the
short form of a user's value in messages. Each type carries its own check, so a field declared with it is
checked the same way in a script, a preset, the command line and a recorded spec."""
from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any, Union

from pydantic import AfterValidator, Field, StrictFloat, StrictInt
from pydantic_core import PydanticCustomError
from animate.util.names import NAME_RE, slug
from animate.models.schedulers import SCHEDULERS
from animate.util.names import reserved_name
import unicodedata
from animate.encode import FORMATS

OUTPUT_FORMATS = tuple(FORMATS)  # the encoders' registry: a new format is one module in animate/encode/
MAX_SEED = 2**63 - 1


def show(value: Any, limit: int = 60) -> str:
    """A short repr of a user's value for messages (safe for huge numbers)."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python will print
        return "a number with thousands of digits"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def loc_text(loc: tuple) -> str:
    """A field path as people write it: `clips[2].adapters[0].weight`."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _between(lo: float, hi: float, lo_open: bool):
    def check(v):
        ok = (lo < v if lo_open else lo <= v) and v <= hi  # NaN fails both comparisons
        if not ok:  # the message gets "(got <the value as written>)" when formatted
            if lo_open:
                raise PydanticCustomError("range", f"must be more than {_num(lo)} and at most {_num(hi)}")
            raise PydanticCustomError("range", f"must be between {_num(lo)} and {_num(hi)}")
        return v

    return check


def Range(kind: Any, lo: float, hi: float, *, lo_open: bool = False) -> Any:
    """`kind` limited to [lo, hi] (or (lo, hi]), with one message naming both bounds."""
    schema = {"exclusiveMinimum" if lo_open else "minimum": lo, "maximum": hi}
    return Annotated[kind, AfterValidator(_between(lo, hi, lo_open)), Field(json_schema_extra=schema)]


def name_problem(name: str, what: str = "clip") -> str | None:
    """Why `name` cannot be a file name, or None. Names become output files, so they are kept plain."""

    reserved = reserved_name(name) if what == "clip" else None  # clip names become files; adapter names don't
    if re.fullmatch(NAME_RE, name) and not name.endswith(".part") and not reserved:
        return None
    fix = slug(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] or name)
    if reserved:
        why = f"a {what} name becomes a file name: {reserved}"
        fix = f"{fix.rstrip('.')}-clip" if reserved_name(fix) or fix.endswith(".") else fix
    elif "/" in name or "\\" in name or ".." in name or name.startswith("~"):
        why = f"a {what} name becomes a file name, so it cannot hold '/', '\\' or '..'"
    elif name.endswith(".part"):
        why = f"a {what} name cannot end in '.part' (that marks unfinished files)"
    elif not name:
        why = f"a {what} name cannot be empty"
    elif len(name) > 64:
        why = f"a {what} name is at most 64 characters"
    elif not name.isascii():  # look-alike letters, right-to-left marks, zero-width spaces disguise file names

        char = next(c for c in name if not c.isascii())
        fix = slug(unicodedata.normalize("NFKC", name))  # fullwidth letters fold to ASCII; look-alikes do not
        why = (f"a {what} name is plain ASCII; it holds U+{ord(char):04X} "
               f"({unicodedata.name(char, 'an unnamed character').lower()})")
    else:
        why = "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    return f"{why} (got {show(name)}); try `{fix}`"


def _check_name(what: str):
    def check(v: str) -> str:
        problem = name_problem(v, what)
        if problem:
            raise ValueError(problem)
        return v

    return check


def _check_format(name: str) -> str:
    if name not in OUTPUT_FORMATS:
        close = difflib.get_close_matches(name.lower(), OUTPUT_FORMATS, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(OUTPUT_FORMATS)}"
        raise ValueError(f"unknown output format {show(name)}; {hint}")
    return name


def _check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        close = difflib.get_close_matches(name.lower(), list(SCHEDULERS), n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(SCHEDULERS)}"
        raise ValueError(f"unknown scheduler {show(name)}; {hint}")
    return name


def _by_eight(v: int) -> int:
    if v % 8:
        raise ValueError(f"must be divisible by 8 (got {v}); try {max(8, round(v / 8) * 8)}")
    return v


def _data_problem(value: Any) -> str | None:
    """Why `value` is not plain JSON data (text keys, finite numbers), or None."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            bad = next((k for k in node if not isinstance(k, str)), None)
            if bad is not None:
                return f"keys must be text (got {show(bad)})"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float) and not math.isfinite(node):
            return f"must be a finite number (got {show(node)})"
        elif node is not None and not isinstance(node, (str, int, float, bool)):
            return f"must be text, a number, true/false, a list or a mapping (got {show(node)})"
    return None


def _check_data(value: Any) -> Any:
    problem = _data_problem(value)
    if problem:
        raise ValueError(problem)
    return value


OutputName = Annotated[str, AfterValidator(_check_format), Field(json_schema_extra={"enum": list(OUTPUT_FORMATS)})]
ClipName = Annotated[str, AfterValidator(_check_name("clip")), Field(json_schema_extra={"pattern": NAME_RE})]
AdapterName = Annotated[str, AfterValidator(_check_name("adapter")), Field(json_schema_extra={"pattern": NAME_RE})]
SchedulerName = Annotated[str, Field(min_length=1), AfterValidator(_check_scheduler)]
Size = Annotated[Range(StrictInt, 8, 4096), AfterValidator(_by_eight)]  # latents are 1/8 of the pixels
Text = Annotated[str, Field(min_length=1)]
Seed = Range(StrictInt, 0, MAX_SEED)
Weight = Range(StrictFloat, -2, 3)
Frame = Range(int, 0, 100_000)  # lax: JSON and TOML keys are strings ("12")
Progress = Range(float, 0, 1)  # denoising progress; lax for the same reason ("0.5")


def _sorted_points(points: dict) -> dict:
    return dict(sorted(points.items()))


def Schedule(value: Any) -> Any:
    """A piecewise-linear schedule over denoising progress: `{0.0: 1.0, 0.5: 0.6, 1.0: 0.3}`, kept sorted."""
    return Annotated[dict[Progress, value], Field(min_length=1, max_length=64), AfterValidator(_sorted_points)]


Prompt = Union[Annotated[str, Field(min_length=1, max_length=10_000)],
               dict[Frame, Annotated[str, Field(max_length=10_000)]]]
# Free-form values (encoder options, pose keypoints): JSON data, so a resolved spec survives a JSON round trip.
Data = Annotated[Any, AfterValidator(_check_data)]
