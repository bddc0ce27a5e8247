"""The error hierarchy: every failure a person can fix is one of these, shown as one line."""
from __future__ import annotations


class AnimateError(Exception):
    """Base of every error the tool reports to a person (exit code 2 unless stated)."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.where = where
        self.hint = hint
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"; {self.hint}"
        return text


class ConfigError(AnimateError):
    """A script, preset or command-line value is wrong."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 lines: list[str] | None = None):
        # `lines` carries several problems found in one validation pass.
        self.lines = lines or []
        super().__init__(message, where=where, hint=hint)

    def line(self) -> str:
        if self.lines:
            return "\n".join(self.lines)
        return super().line()


class ModelError(AnimateError):
    """A model source is missing, unreachable or does not fit the model stack."""


class EncodeError(AnimateError):
    """An output could not be encoded as asked (bad option, budget not reachable)."""


class OutputError(AnimateError):
    """The output root cannot take the planned outputs: it is a file, read-only, or short of space."""


class PoseError(AnimateError):
    """A pose source cannot be turned into conditioning frames."""


class NumericFaultError(AnimateError):
    """Rendering produced NaN/inf or black frames that a retry could not fix."""

    exit_code = 1


class RenderError(AnimateError):
    """One clip failed while rendering (the library raised); the run goes on with the other clips."""

    exit_code = 1


class OutOfMemory(AnimateError):
    """The device ran out of memory at every fallback setting."""

    exit_code = 1


class WriteError(AnimateError):
    """The machine refused a write at run time (full disk, read-only folder); finished clips are kept."""

    exit_code = 1


class Interrupted(AnimateError):
    """The user pressed Ctrl-C; finished clips are kept."""

    exit_code = 1


class Cancelled(KeyboardInterrupt):
    """A stop asked for between denoising steps (`animate serve`'s cancel). The runner takes it as Ctrl-C:
    finished clips are kept, the clip being denoised writes nothing."""
