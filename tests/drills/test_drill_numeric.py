"""NaN latents and out-of-memory inside the denoiser: the clip retries or fails with one line naming it, the
other clips finish, nothing written is lost, and the next run renders only that clip."""
import pytest
from drill_kit import TARGET, loaded_pipe, render_argv, run_child, settle, track_clip


def in_unet(fault, times):
    """Replace the UNet's output with NaN, or raise a CUDA out-of-memory error, on the target clip's first
    `times` calls (None: every call)."""
    def install(fire, renderer):
        import torch

        state, cls = track_clip(renderer), type(loaded_pipe(renderer).unet)
        real, seen = cls.forward, []

        def forward(self, *a, **kw):
            if state.get("clip") != TARGET or (times is not None and len(seen) >= times):
                return real(self, *a, **kw)
            seen.append(1)
            fire(fault, kill=False)
            if fault == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (drill)")
            out = real(self, *a, **kw)
            sample = out[0] if isinstance(out, tuple) else out.sample
            nan = torch.full_like(sample, float("nan"))
            return (nan,) + tuple(out[1:]) if isinstance(out, tuple) else type(out)(sample=nan)

        cls.forward = forward
    return install


@pytest.mark.parametrize("fault", ["nan", "oom"])
@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
def test_numeric_and_memory_faults(fault, times, warm, drill_script, tmp_path):
    out = tmp_path / "out"
    result = run_child(warm, render_argv(drill_script, out), in_unet(fault, times), tmp_path / "child")
    assert result.fired, f"{fault}: the fault never fired: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.error_lines()
    if result.status == 0:  # a retry (a safer precision, a memory saver) got the clip through
        assert not lines and times is not None, result.stderr[-2000:]
    else:  # the clip failed by itself; the others went on
        assert result.status == 1 and len(lines) == 1 and TARGET in lines[0], result.stderr[-2000:]
    if times is None:
        assert result.status == 1, "a fault on every try cannot produce a clip"
    settle(f"{fault}-{'always' if times is None else 'once'}", warm, drill_script, out, result,
           faults=len(result.fired))
