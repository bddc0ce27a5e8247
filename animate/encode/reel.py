"""A reel: several clips in one MP4, optionally crossfaded and with an audio track.

moviepy composes (timing, crossfades, audio); frames are then pulled one by one at frame centres and
encoded by our mp4 path, so the reel keeps H.264 High, BT.709 tags and faststart, and the frame count is
exact (moviepy's ImageSequenceClip drops the last frame and its writer ignores pixel_format).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from animate.util.atomic import PART, _writer, atomic_file
from animate.encode.base import check_fps, check_frames, ffmpeg_exe
from animate.encode.video import encode_mp4
from animate.errors import EncodeError


def _clip(frames: np.ndarray, src_fps: float, fps: float):
    """A moviepy clip showing frame floor(t·src_fps), resampled to whole frames at the reel's fps."""
    from moviepy import VideoClip  # media library: loaded on use

    count = max(1, round(len(frames) / src_fps * fps))
    last = len(frames) - 1

    def frame_at(t):
        return frames[min(int(t * src_fps + 1e-6), last)]

    return VideoClip(frame_at, duration=count / fps), count


def reel_frame_count(clips, fps: float, crossfade: float) -> int:
    counts = [max(1, round(len(f) / s * fps)) for f, s in clips]
    return sum(counts) - (len(counts) - 1) * round(crossfade * fps)


def write_reel(clips: list[tuple[np.ndarray, float]], path, *, fps: float | None = None, audio=None,
               crossfade: float = 0.0, crf: int = 18, metadata: str | None = None) -> Path:
    """One MP4 of `clips` (frames, fps) in order; fps defaults to the fastest clip's."""
    from moviepy import AudioFileClip, concatenate_videoclips, vfx  # media library: loaded on use

    if not clips:
        raise EncodeError("a reel needs at least one clip", where="reel")
    clips = [(check_frames(f, "reel"), check_fps(s, "reel")) for f, s in clips]
    fps = check_fps(fps or max(s for _, s in clips), "reel")
    fade_frames = round(crossfade * fps)
    pieces = [_clip(f, s, fps) for f, s in clips]
    if fade_frames and min(n for _, n in pieces) <= fade_frames:
        raise EncodeError(f"crossfade {crossfade:g} s is as long as a clip", where="reel.crossfade",
                          hint="use a crossfade shorter than the shortest clip")
    fade = fade_frames / fps
    videos = [c if i == 0 or not fade else c.with_effects([vfx.CrossFadeIn(fade)]) for i, (c, _) in enumerate(pieces)]
    final = concatenate_videoclips(videos, method="compose", padding=-fade if fade else 0)
    total = reel_frame_count(clips, fps, crossfade)
    # Sample at frame centres: no float edge lands on the neighbouring frame.
    frames = np.stack([np.asarray(final.get_frame((i + 0.5) / fps))[..., :3].astype(np.uint8)
                       for i in range(total)])
    path = Path(path)
    with atomic_file(path) as tmp:
        if audio is None:
            encode_mp4(frames, tmp, fps=fps, crf=crf, metadata=metadata)
        else:
            # Hidden and named for its writer, like every temp file: the sweep removes it if we are killed.
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.{_writer()}{PART}") as work:
                video, sound = Path(work) / "video.mp4", Path(work) / "audio.m4a"
                encode_mp4(frames, video, fps=fps, crf=crf, metadata=metadata)
                track = AudioFileClip(str(audio))
                track = track.subclipped(0, min(track.duration, total / fps))
                track.write_audiofile(str(sound), fps=44100, codec="aac", logger=None)
                track.close()
                cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(video),
                       "-i", str(sound), "-map", "0:v", "-map", "1:a", "-c", "copy", "-map_metadata", "0",
                       "-movflags", "+faststart", "-f", "mp4", str(tmp)]
                proc = subprocess.run(cmd, capture_output=True, start_new_session=True)
                if proc.returncode != 0:
                    raise EncodeError(f"muxing audio failed: {proc.stderr.decode(errors='replace')[-200:]}",
                                      where="reel.audio")
    final.close()
    return path
