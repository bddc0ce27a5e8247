"""Read back the clip-spec JSON that the encoders embed, from any format we write."""
from __future__ import annotations

from pathlib import Path

from animate.encode.frames import METADATA_KEY
from animate.encode.webp import EXIF_IMAGE_DESCRIPTION


def read_metadata(path) -> str | None:
    """The embedded metadata string of an output (PNG folder: its first frame), or None if absent."""
    path = Path(path)
    if path.is_dir():
        frames = sorted(path.glob("*.png"))
        return read_metadata(frames[0]) if frames else None
    suffix = path.suffix.lower()
    if suffix in (".png", ".gif", ".webp"):
        from PIL import Image

        try:
            im = Image.open(path)
        except (OSError, Image.DecompressionBombError):  # not ours to decode: no metadata
            return None
        with im:
            if suffix == ".png":
                return im.text.get(METADATA_KEY) if hasattr(im, "text") else None
            if suffix == ".gif":
                comment = im.info.get("comment")
                return comment.decode("utf-8") if isinstance(comment, bytes) else comment
            value = im.getexif().get(EXIF_IMAGE_DESCRIPTION)
            return value.decode("utf-8") if isinstance(value, bytes) else value
    import av

    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        for stream in container.streams:
            tags.update({k.lower(): v for k, v in stream.metadata.items() if k.lower() not in tags})
    return tags.get("comment")
