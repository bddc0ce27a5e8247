"""The execution layer, one way inside: limits → checks → plan → jobs → runner → ray backend."""
import importlib


def __getattr__(name: str):
    # `from animate.run import run_specs` and the runner's other names, as before `run` became a package,
    # without loading the runner for `animate.run.checks` or `animate.run.limits`.

    runner = importlib.import_module("animate.run.runner")

    try:
        return getattr(runner, name)
    except AttributeError:
        raise AttributeError(f"module 'animate.run' has no attribute {name!r}") from None
