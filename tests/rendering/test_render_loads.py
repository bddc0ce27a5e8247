"""A script of clips sharing a model stack loads the base model and each adapter exactly once."""
import yaml
from click.testing import CliRunner


def test_three_clips_load_once(kit, tmp_path, tiny_fields, monkeypatch):
    from diffusers import AnimateDiffPipeline, MotionAdapter

    from animate.cli import main

    counts = {"base": 0, "motion": 0, "lora": 0}

    def counting(name, original):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(AnimateDiffPipeline, "from_pretrained",
                        classmethod(counting("base", AnimateDiffPipeline.from_pretrained.__func__)))
    monkeypatch.setattr(MotionAdapter, "from_pretrained",
                        classmethod(counting("motion", MotionAdapter.from_pretrained.__func__)))
    monkeypatch.setattr(AnimateDiffPipeline, "load_lora_weights",
                        counting("lora", AnimateDiffPipeline.load_lora_weights))
    defaults = {**tiny_fields, "frames": 4, "outputs": ["png"],
                "adapters": [{"name": "lcm", "source": "tiny-lcm"}, {"name": "zoom", "source": "tiny-zoom-in"}]}
    clips = [{"name": f"c{i}", "adapters": [{"name": "zoom", "weight": w}]} for i, w in enumerate([0.2, 0.6, 1.0])]
    script = tmp_path / "three.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": defaults, "clips": clips}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "o"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert counts == {"base": 1, "motion": 1, "lora": 2}
    assert len(list((tmp_path / "o" / "three").glob("c*/frame_00000.png"))) == 3


def test_clips_are_grouped_by_stack(kit, tmp_path, monkeypatch):
    from diffusers import AnimateDiffPipeline

    from animate.cli import main

    loads = []
    for name in ("from_pretrained", "from_single_file"):
        original = getattr(AnimateDiffPipeline, name).__func__
        monkeypatch.setattr(AnimateDiffPipeline, name,
                            classmethod(lambda cls, *a, _n=name, _o=original, **k: (loads.append(_n), _o(cls, *a, **k))[1]))
    clips = [{"name": "a", "model": "tiny"}, {"name": "b", "model": "tiny-file"}, {"name": "c", "model": "tiny"}]
    script = tmp_path / "mixed.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {"preset": "tiny", "frames": 2, "width": 16,
                                                                  "height": 16, "steps": 1, "prompt": "x",
                                                                  "outputs": ["png"]}, "clips": clips}))
    result = CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "o"), "--quiet",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert loads == ["from_pretrained", "from_single_file"]
