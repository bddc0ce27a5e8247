"""The conditioning variants, in the order they wrap the pipeline (pose's ControlNet first: the video-to-video
pipeline takes it over). A new kind of conditioning is one module with a `Conditioning` and one line here."""
from __future__ import annotations

from animate.rendering.conditioning import Conditioning
from animate.rendering.keyframes import KEYFRAMES
from animate.rendering.pose import POSE
from animate.rendering.video_input import VIDEO

CONDITIONINGS: tuple[Conditioning, ...] = (POSE, KEYFRAMES, VIDEO)


def active(spec) -> list[Conditioning]:
    """The variants a clip uses, in pipeline order."""
    return [c for c in CONDITIONINGS if c.active(spec)]
