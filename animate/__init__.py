"""animate: prompt scripts to short AnimateDiff clips.

    import animate
    clip = animate.render(prompt="a lighthouse", preset="tiny", frames=8)   # ClipResult(.frames uint8 F×H×W×3)
    specs = animate.load_specs("script.yaml")                                  # one ClipSpec per (clip, seed)
    frames = animate.Renderer().render(specs[0]).frames
    summary = animate.run_script("script.yaml", out="outputs", on_event=print)       # a whole script, with events
"""
from __future__ import annotations
from pathlib import Path

__version__ = "0.1.0"

_renderers: dict = {}


def load_specs(path, *, only=None, **overrides):
    """Validate a script and resolve it into ClipSpecs (keyword overrides win over the script)."""
    from animate.spec import load_script, resolve

    return resolve(load_script(path), overrides or None, only=list(only) if only else None)


def run_script(script=None, *, specs=None, out="outputs", on_event=None, only=None, force: bool = False,
        device: str | None = None, dtype: str | None = None, **overrides):
    """Run a script (or a list of ClipSpecs) as `animate render` does: plan, render what is not up to date,
    encode, record. `on_event(event)` receives every typed event (animate.events); returns the RunSummary."""

    from animate.events import Events
    from animate.run.runner import run_specs
    from animate.spec import load_script, resolve

    reel, stem, base_dir = None, "api", "."
    if script is not None:
        loaded = load_script(script)
        specs = resolve(loaded, overrides or None, only=list(only) if only else None)
        reel, stem, base_dir = (loaded.model.reel_options() if not only else None), loaded.stem, Path(script).parent
    if not specs:
        raise TypeError("give a script path or specs=[ClipSpec, ...]")
    return run_specs(list(specs), out=out, script_stem=stem, force=force, events=Events(on_event), device=device,
                     dtype=dtype, reel=reel, base_dir=base_dir)


def render(prompt=None, *, spec=None, device: str | None = None, dtype: str | None = None, name: str = "clip",
           **fields):
    """Render one clip from keyword fields (as in a script) or a ClipSpec; returns a ClipResult.

    Renderers are cached per (device, dtype), so repeated calls reuse the loaded pipeline and adapters.
    """
    from animate.run.checks import check_specs
    from animate.rendering.renderer import Renderer
    from animate.spec import spec_from_fields

    if spec is None:
        specs = spec_from_fields({**fields, "prompt": prompt}, name=name)
        spec = specs[0]
    check_specs([spec])
    key = (device, dtype)
    if key not in _renderers:
        _renderers[key] = Renderer(device=device, dtype=dtype)
    return _renderers[key].render(spec)


def __getattr__(name):
    # Heavy modules load on first use so `animate --help` starts instantly.
    if name in ("Renderer", "ClipResult"):
        from animate.rendering import renderer as _render

        return getattr(_render, name)
    if name in ("ClipSpec",):
        from animate import spec as _spec

        return getattr(_spec, name)
    if name in ("AnimateError", "ConfigError", "ModelError", "EncodeError", "PoseError"):
        from animate import errors as _errors

        return getattr(_errors, name)
    raise AttributeError(f"module 'animate' has no attribute {name!r}")
