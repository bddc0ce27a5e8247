"""`animate serve` is safe by default: a non-local bind needs a token, every request checks it, outputs are
served only from under the output root (a traversal is a 404 and nothing is opened), bodies are size-limited,
and a submitted script cannot name files outside the configured input roots."""
import pytest
from click.testing import CliRunner

from cli_helpers import assert_one_error_line
from serve_helpers import CLIP, TOKEN, make_client

pytest.importorskip("fastapi")

from animate.cli import main  # noqa: E402
from animate.server import app as app_module  # noqa: E402


def test_a_non_local_bind_without_a_token_refuses_to_start(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--out", str(tmp_path / "out")])
    assert_one_error_line(result, tmp_path / "out", "--host 0.0.0.0", "--token")
    short = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--token", "abc", "--out", str(tmp_path / "o")])
    assert_one_error_line(short, tmp_path / "o", "shorter than 16")


def test_every_request_needs_the_token(tmp_path):
    client, _ = make_client(tmp_path, token=TOKEN)
    for method, path in (("GET", "/"), ("GET", "/api/jobs"), ("GET", "/api/outputs"), ("GET", "/openapi.json"),
                         ("POST", "/api/clips"), ("DELETE", "/api/jobs/x"), ("GET", "/api/outputs/a/b.gif")):
        response = client.request(method, path)
        assert response.status_code == 401, (method, path, response.status_code)
    wrong = client.get("/api/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # The page: opened once as /?token=..., then a cookie carries it (EventSource and <img> send cookies).
    page = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert page.status_code == 303 and TOKEN in page.headers["set-cookie"]
    assert "httponly" in page.headers["set-cookie"].lower()
    assert client.get("/api/jobs").status_code == 200  # the client kept the cookie


def test_a_traversal_in_an_output_path_is_404_without_reading_the_file(tmp_path, monkeypatch):
    client, _ = make_client(tmp_path)
    out = tmp_path / "out"
    (out / "demo").mkdir(parents=True)
    (out / "demo" / "fox.gif").write_bytes(b"GIF89a-fox")
    (out / ".serve" / "jobs").mkdir(parents=True)
    (out / ".serve" / "jobs" / "abc.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    (out / "demo" / "link.txt").symlink_to(secret)
    opened = []
    real = app_module.FileResponse
    monkeypatch.setattr(app_module, "FileResponse", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    for path in ("/api/outputs/..%2Fsecret.txt", "/api/outputs/demo/..%2F..%2Fsecret.txt",
                 "/api/outputs/%2e%2e/%2e%2e/secret.txt", f"/api/outputs/{secret}", f"/api/outputs/%2F{secret}",
                 "/api/outputs/demo/link.txt", "/api/outputs/.serve/jobs/abc.json", "/api/outputs/demo/",
                 "/api/outputs/demo%5C..%5C..%5Csecret.txt", "/api/history/..%2F..%2Fsecret/x/script"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"SECRET" not in response.content
    assert opened == []
    served = client.get("/api/outputs/demo/fox.gif")
    assert served.status_code == 200 and served.content == b"GIF89a-fox" and len(opened) == 1
    assert [f["path"] for f in client.get("/api/outputs").json()["files"]] == ["demo/fox.gif"]


def test_an_oversized_body_is_413(tmp_path):
    client, queue = make_client(tmp_path, max_body=1000)
    big = "version: 1\nclips:\n  - {name: a, prompt: '" + "x" * 2000 + "'}\n"
    response = client.post("/api/jobs", content=big, headers={"content-type": "application/yaml"})
    assert response.status_code == 413
    chunked = client.post("/api/jobs", content=iter([big[:600].encode(), big[600:].encode()]),
                          headers={"content-type": "application/yaml"})  # no Content-Length to refuse up front
    assert chunked.status_code == 413
    assert not queue.jobs and not (tmp_path / "out" / ".serve").exists()


def test_cross_site_writes_and_foreign_hosts_are_refused(tmp_path):
    client, queue = make_client(tmp_path)
    evil = client.post("/api/clips", json=CLIP, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    rebound = client.get("/api/jobs", headers={"Host": "evil.example:7860"})  # DNS rebinding onto localhost
    assert rebound.status_code == 403
    assert not queue.jobs


def test_validation_errors_are_422_with_the_cli_error_fields(kit, tmp_path):
    client, queue = make_client(tmp_path)
    bad = "version: 1\nclips:\n  - name: fox\n    prompt: a fox\n    model: tiny\n    stepz: 3\n"
    response = client.post("/api/jobs?name=demo", content=bad, headers={"content-type": "application/yaml"})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["event"] == "error" and error["file"] == "demo.yaml" and error["line"] == 6
    assert error["field"] == "clips[0].stepz" and "steps" in (error["hint"] or error["message"])
    assert set(error) >= {"message", "clip", "file", "line", "field", "value", "hint"}
    limit = client.post("/api/clips", json={**CLIP, "frames": 1024, "width": 4096, "height": 4096})
    assert limit.status_code == 422 and "limit" in limit.json()["detail"]
    assert not queue.jobs


def test_submitted_paths_stay_inside_the_input_roots(kit, tmp_path):
    import shutil

    from animate.models.tiny import kit_dir

    inputs, elsewhere = tmp_path / "inputs", tmp_path / "elsewhere"
    for folder in (inputs, elsewhere):
        shutil.copytree(kit_dir() / "lcm-lora", folder / "lcm-lora")
    (elsewhere / "preset.yaml").write_text("steps: 2\n")
    client, queue = make_client(tmp_path, input_roots=[inputs])
    lora = str(elsewhere / "lcm-lora" / "pytorch_lora_weights.safetensors")
    for fields, field in (({"adapters": [{"name": "x", "source": lora, "weight": 0.5}]}, "adapters.x"),
                          ({"model": str(elsewhere)}, "model"), ({"preset": "../elsewhere/preset.yaml"}, None),
                          ({"pose": {"source": "/etc/hostname", "controlnet": "tiny"}}, "pose.source")):
        response = client.post("/api/clips", json={**CLIP, **fields})
        assert response.status_code == 422, (fields, response.text)
        error = response.json()["errors"][0]
        assert "outside the server's input roots" in error["message"], error
        if field:
            assert error["field"] == field and error["clip"] == "a-fox", error
    assert not queue.jobs
    inside = str(inputs / "lcm-lora" / "pytorch_lora_weights.safetensors")
    ok = client.post("/api/clips", json={**CLIP, "adapters": [{"name": "lcm", "source": inside, "kind": "lcm"}]})
    assert ok.status_code == 201, ok.text
    relative = client.post("/api/clips", json={**CLIP, "name": "rel", "adapters": [
        {"name": "lcm", "source": "lcm-lora/pytorch_lora_weights.safetensors", "kind": "lcm"}]})
    assert relative.status_code == 201, relative.text  # relative paths resolve in the first input root
