"""Exceptions of the motion layer; `animate` turns them into one-line user errors."""


class MotionError(ValueError):
    """Base of errors raised by `motion` on bad input."""


class PoseSourceError(MotionError):
    """A pose source cannot be read or turned into one conditioning image per frame."""


class AdapterError(MotionError):
    """A motion adapter or LoRA file does not have the expected shape or format."""
