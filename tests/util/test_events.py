"""One event stream: typed events with one payload shape per name, error fields split out, --json errors."""
import dataclasses
import json

import yaml
from click.testing import CliRunner

from animate.cli import main
from animate.events import EVENTS, parse_error_line


def test_validation_errors_are_events_on_stdout_with_json(tmp_path):
    script = tmp_path / "bad.yaml"
    script.write_text("version: 1\ndefaults: {preset: tiny}\nclips:\n  - name: c1\n    prompt: x\n    steps: 500\n"
                      "  - name: c2\n    prompt: y\n    guidanc: 3\n")
    result = CliRunner().invoke(main, ["render", str(script), "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["error", "error"]
    steps, typo = events
    assert steps["file"] == str(script) and steps["line"] == 6 and steps["field"] == "clips[0].steps"
    assert steps["value"] == "500" and steps["fatal"] is True
    assert typo["line"] == 9 and typo["field"] == "clips[1].guidanc" and "guidance" in typo["hint"]
    assert "error: " in result.stderr and not (tmp_path / "out").exists()


def test_error_lines_split_into_fields():
    e = parse_error_line("s.yaml: clip c1: adapters[0] (style): x.safetensors is not a LoRA; give a LoRA file")
    assert (e.file, e.clip, e.field, e.hint) == ("s.yaml", "c1", "adapters[0] (style)", "give a LoRA file")
    e = parse_error_line("--lora: weight 'abc' is not a number; use SOURCE:WEIGHT")
    assert e.file == "command line" and e.field == "--lora" and e.hint == "use SOURCE:WEIGHT"
    e = parse_error_line("command line: steps: must be between 1 and 200 (got 0)")
    assert e.field == "steps" and e.value == "0"


def test_every_event_of_a_run_has_its_one_payload_shape(kit, tmp_path):
    script = tmp_path / "ev.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 2, "outputs": ["gif", "png"]},
        "clips": [{"name": "a", "prompt": "x"}, {"name": "b", "prompt": "y"}]}))
    out = tmp_path / "out"
    runs = [CliRunner().invoke(main, ["render", str(script), "--out", str(out), "--json", "--device", "cpu"])
            for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    events = [json.loads(line) for r in runs for line in r.stdout.splitlines() if line.startswith("{")]
    seen = set()
    for event in events:
        cls = EVENTS[event["event"]]
        assert set(event) == {"event", "time"} | {f.name for f in dataclasses.fields(cls)}, event
        seen.add(event["event"])
    assert seen == {"plan", "clip_start", "step", "encode_done", "clip_done", "summary"}
    first, second = [[json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")] for r in runs]
    assert [e["status"] for e in first[0]["clips"]] == ["render", "render"]
    assert [e["status"] for e in second[0]["clips"]] == ["done", "done"]
    assert [e["skipped"] for e in second if e["event"] == "clip_done"] == [True, True]
    encodes = [e for e in first if e["event"] == "encode_done"]
    assert sorted((e["clip"], e["format"]) for e in encodes) == [("a", "gif"), ("a", "png"), ("b", "gif"),
                                                                 ("b", "png")]


def test_python_callbacks_receive_the_same_events(kit, tmp_path):
    import animate

    script = tmp_path / "cb.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "a", "prompt": "x"}]}))
    received = []
    summary = animate.run_script(script, out=tmp_path / "out", on_event=received.append, device="cpu")
    assert summary.rendered == ["a"] and summary.exit_code == 0
    assert [e.name for e in received][0] == "plan" and received[-1].name == "summary"
    assert received[-1].rendered == 1
