"""Map clip frames to source frames by time.

Clip frame i is shown at t = i / fps; it takes the source frame nearest to t on the source's own clock,
round(t * source_fps), ties going to the later frame. A source shorter than the clip is an error by default;
`overrun="hold"` repeats its last frame and `overrun="loop"` starts it again.
"""
from __future__ import annotations

import math

OVERRUNS = ("error", "hold", "loop")


def source_indices(frames: int, fps: float, source_count: int, source_fps: float | None, *,
                   overrun: str = "error", where: str = "pose source") -> list[int]:
    """Source frame index for each of the clip's `frames` frames (see the module docstring)."""
    from motion.errors import PoseSourceError

    if overrun not in OVERRUNS:
        raise PoseSourceError(f"{where}: overrun {overrun!r} is not one of {', '.join(OVERRUNS)}")
    if source_count < 1:
        raise PoseSourceError(f"{where}: has no frames; give a source with at least one pose")
    if source_count == 1:
        return [0] * frames  # a still pose holds for the whole clip
    if source_fps is None:
        if source_count != frames:
            raise PoseSourceError(
                f"{where}: has {source_count} frames but the clip has {frames}; give {frames} frames, "
                f"or set the pose `source_fps` to resample it by time")
        return list(range(frames))
    if not (source_fps > 0 and fps > 0):
        raise PoseSourceError(f"{where}: fps must be positive (clip {fps}, source {source_fps})")
    # The epsilon keeps exact halves (2.5) from falling to the lower frame through float error.
    wanted = [math.floor(i * source_fps / fps + 0.5 + 1e-9) for i in range(frames)]
    last = source_count - 1
    if overrun == "loop":
        return [w % source_count for w in wanted]
    # One frame past the end is just rounding at the tail; more means the source is too short.
    if overrun == "error" and wanted and wanted[-1] > last + 1:
        clip_s, source_s = frames / fps, source_count / source_fps
        raise PoseSourceError(
            f"{where}: lasts {source_s:.2f}s ({source_count} frames at {source_fps:g} fps) but the clip "
            f"lasts {clip_s:.2f}s ({frames} frames at {fps:g} fps); use a longer source, fewer frames, "
            f"or set the pose `overrun` to hold or loop")
    return [min(w, last) for w in wanted]

