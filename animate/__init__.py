"""animate: prompt scripts to short AnimateDiff clips.

    import animate
    clip = animate.render(prompt="a lighthouse", preset="tiny", frames=8)   # ClipResult(.frames uint8 F×H×W×3)
    specs = animate.load_specs("script.yaml")                                  # one ClipSpec per (clip, seed)
    frames = animate.Renderer().render(specs[0]).frames
"""
from __future__ import annotations

__version__ = "0.1.0"

_renderers: dict = {}


def load_specs(path, *, only=None, **overrides):
    """Validate a script and resolve it into ClipSpecs (keyword overrides win over the script)."""
    from .script import load_script, resolve

    return resolve(load_script(path), overrides or None, only=list(only) if only else None)


def render(prompt=None, *, spec=None, device: str | None = None, dtype: str | None = None, name: str = "clip",
           **fields):
    """Render one clip from keyword fields (as in a script) or a ClipSpec; returns a ClipResult.

    Renderers are cached per (device, dtype), so repeated calls reuse the loaded pipeline and adapters.
    """
    from .renderer import Renderer
    from .script import spec_from_fields

    if spec is None:
        specs = spec_from_fields({**fields, "prompt": prompt}, name=name)
        spec = specs[0]
    key = (device, dtype)
    if key not in _renderers:
        _renderers[key] = Renderer(device=device, dtype=dtype)
    return _renderers[key].render(spec)


def __getattr__(name):
    # Heavy modules load on first use so `animate --help` starts instantly.
    if name in ("Renderer", "ClipResult"):
        from . import renderer as _render

        return getattr(_render, name)
    if name in ("ClipSpec",):
        from . import script as _script

        return getattr(_script, name)
    if name in ("AnimateError", "ConfigError", "ModelError", "EncodeError", "PoseError"):
        from . import errors as _errors

        return getattr(_errors, name)
    raise AttributeError(f"module 'animate' has no attribute {name!r}")
