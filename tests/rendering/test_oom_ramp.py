"""An out-of-memory retry restarts a clip with weight ramps from the weights of step 0."""
import numpy as np
import torch

from animate.rendering.renderer import Renderer
from animate.spec import spec_from_fields

FAIL_AFTER_STEP = 2  # the callback of this step (0-based) has moved the ramp on before the failure


def ramp_spec():
    adapters = [{"name": "lcm", "source": "tiny-lcm", "kind": "lcm"},
                {"name": "zoom", "source": "tiny-zoom-in", "kind": "motion", "weight": {"start": 0.0, "end": 1.5}}]
    return spec_from_fields(dict(preset="tiny", prompt="x", frames=4, width=32, height=32, steps=4, seed=4,
                                 adapters=adapters))[0]


def test_retry_after_oom_starts_the_ramp_again(kit, monkeypatch):
    renderer = Renderer(device="cpu")
    spec = ramp_spec()
    pipe_cls = type(renderer.stack_for(spec).pipe)
    original, failed = pipe_cls.__call__, []

    def fails_once(self, *args, callback_on_step_end=None, **kwargs):
        if failed:
            return original(self, *args, callback_on_step_end=callback_on_step_end, **kwargs)

        def step_then_fail(pipe, i, t, kw):
            out = callback_on_step_end(pipe, i, t, kw)
            if i == FAIL_AFTER_STEP:
                failed.append(i)
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return out

        return original(self, *args, callback_on_step_end=step_then_fail, **kwargs)

    monkeypatch.setattr(pipe_cls, "__call__", fails_once)
    retried = renderer.render(spec)
    monkeypatch.undo()
    assert failed == [FAIL_AFTER_STEP] and retried.info["memory_fallbacks"] == ["free_caches"]
    clean = renderer.render(spec)  # same renderer, so the same rungs are on for both
    assert np.array_equal(retried.frames, clean.frames)
