"""`animate poses SOURCE --out DIR`: write a pose source's conditioning frames and a contact sheet.

It lets a person see exactly what the ControlNet will be given before spending a render on it.
"""
from __future__ import annotations

import math
from pathlib import Path

import click

from animate.util.atomic import atomic_dir
from animate.errors import PoseError
from animate.rendering.pose import pose_cache_dir
from motion.errors import PoseSourceError
from motion.pose import detect_kind, pose_frames, pose_keypoints
from motion.pose.draw import draw_pose
from motion.pose.openpose_json import to_openpose
import json
import yaml

KINDS = ("skeleton", "openpose-json", "keyframes", "person-video")  # motion.pose.KINDS, without numpy
FITS = ("contain", "cover", "stretch")
OVERRUNS = ("error", "hold", "loop")


def contact_sheet(frames, *, thumb: int = 128, gap: int = 2):
    """A grid of thumbnails (longer side `thumb` px) on dark grey, about square, in frame order."""
    import numpy as np  # media library: loaded on use
    from PIL import Image  # media library: loaded on use

    height, width = frames[0].shape[:2]
    k = min(1.0, thumb / max(width, height))
    tw, th = max(1, round(width * k)), max(1, round(height * k))
    cols = math.ceil(math.sqrt(len(frames)))
    rows = math.ceil(len(frames) / cols)
    sheet = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap, 3), 48, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        small = np.asarray(Image.fromarray(frame).resize((tw, th), Image.BILINEAR))
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        sheet[y:y + th, x:x + tw] = small
    return sheet


def _load_keyframes(path: Path) -> dict:
    text = path.read_text()
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a mapping {{frame: {{keypoint: [x, y]}}}}",
                                 param_hint="SOURCE")
    return data


@click.command("poses")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for frame_00000.png ..., sheet.png and, for keypoint sources, keypoints.json "
                   "(replaced as a whole).")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--fps", default=8.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--width", default=512, show_default=True, type=click.IntRange(min=8))
@click.option("--height", default=512, show_default=True, type=click.IntRange(min=8))
@click.option("--fit", type=click.Choice(FITS), default="contain", show_default=True,
              help="How the pose's aspect meets the output's.")
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Source kind; guessed from the source when left out (keyframes: a YAML/JSON file).")
@click.option("--source-fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate of an image folder or JSON frames, to resample them by time.")
@click.option("--overrun", type=click.Choice(OVERRUNS), default=None,
              help="When the source is shorter than the clip [default: error].")
@click.option("--canvas", type=(int, int), default=None, metavar="W H",
              help="Pixel size the keypoints were written for (JSON, keyframes).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Drop keypoints below this confidence [default: 0.3].")
@click.option("--no-smooth", is_flag=True, help="person-video: no despiking and One-Euro smoothing.")
@click.option("--complexity", type=click.IntRange(0, 2), default=None,
              help="person-video: MediaPipe landmark model, 0 lite, 1 full, 2 heavy [default: 1].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder [default: the one `render` uses, $ANIMATE_CACHE or ~/.cache/animate].")
def poses(source, out, frames, fps, width, height, fit, kind, source_fps, overrun, canvas, threshold,
          no_smooth, complexity, cache_dir):
    """Write the pose conditioning frames of SOURCE, one PNG per frame, and a contact sheet.

    Keypoint sources (OpenPose JSON, keyframes, a person video) also get keypoints.json: the drawn
    keypoints in output pixels as OpenPose COCO-18 frames, ready for a pose editor or a `pose:` source."""

    from PIL import Image  # media library: loaded on use

    given = {"source_fps": source_fps, "overrun": overrun, "canvas": canvas, "threshold": threshold,
             "smooth": False if no_smooth else None, "complexity": complexity}
    opts = {k: v for k, v in given.items() if v is not None}  # sources reject options they don't take
    src = _load_keyframes(source) if kind == "keyframes" else source
    try:
        kind = kind or detect_kind(src)
        args = dict(frames=frames, fps=fps, width=width, height=height, fit=fit,
                    cache_dir=cache_dir or pose_cache_dir(), kind=kind, **opts)  # render's cache: extract once
        if kind == "skeleton":  # images already: nothing to export
            images, keypoints = pose_frames(src, **args), None
        else:
            # Points below the threshold come back as 0 (missing), which draw_pose never draws: drawing
            # these keypoints gives exactly pose_frames' images, without running the source twice.
            keypoints = pose_keypoints(src, **args)
            images = [draw_pose(points, width, height, threshold=0.0) for points in keypoints]
    except PoseSourceError as exc:
        raise PoseError(str(exc)) from None
    with atomic_dir(out) as tmp:
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp / f"frame_{i:05d}.png")
        Image.fromarray(contact_sheet(images)).save(tmp / "sheet.png")
        if keypoints is not None:
            (tmp / "keypoints.json").write_text(json.dumps(to_openpose(keypoints, width, height)))
    extra = " and keypoints.json" if keypoints is not None else ""
    click.echo(f"wrote {len(images)} pose frames, sheet.png{extra} to {out}", err=True)

