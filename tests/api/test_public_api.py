"""The Python API has the same power as the command line."""
import numpy as np


def test_render_from_keywords(kit):
    import animate

    clip = animate.render(prompt="a lighthouse", preset="tiny", frames=4, width=32, height=32, steps=1, seed=5,
                          device="cpu")
    assert clip.frames.shape == (4, 32, 32, 3) and clip.frames.dtype == np.uint8
    again = animate.render(prompt="a lighthouse", preset="tiny", frames=4, width=32, height=32, steps=1, seed=5,
                           device="cpu")
    assert np.array_equal(clip.frames, again.frames)


def test_load_specs_and_renderer(kit, tmp_path):
    import animate

    script = tmp_path / "s.yaml"
    script.write_text("version: 1\ndefaults: {preset: tiny, frames: 4, width: 32, height: 32, steps: 1}\n"
                      "clips:\n  - {name: a, prompt: one, seed: [1, 2]}\n  - {name: b, prompt: two}\n")
    specs = animate.load_specs(script, only=["a"])
    assert [s.stem for s in specs] == ["a-s1", "a-s2"]
    frames = animate.Renderer(device="cpu").render(specs[0]).frames
    assert frames.shape == (4, 32, 32, 3)
