"""`POST /api/uploads` of `animate serve`: a file sent as the raw body is stored content-addressed under
OUT/.serve/uploads (once, atomically, never outside it), only videos, images and OpenPose .json are taken, each
within the server's limit for its kind, a script submitted to the same server may name the upload (and nothing
else under the output root), the token guard covers it, and the page's pickers upload and fill the clip."""
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from serve_helpers import CLIP, TOKEN, free_port, make_client, running_server
from video_helpers import constant_rate, write_video

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from animate.run.limits import Limits  # noqa: E402
from animate.server.app import create_app  # noqa: E402
from animate.server.config import ServeConfig  # noqa: E402
from animate.server.queue import JobQueue  # noqa: E402


def png_bytes(size: int = 8, level: int = 128) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), level, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def mp4_bytes(tmp_path) -> bytes:
    path = write_video(tmp_path / "made.mp4", constant_rate(4, 8), width=32, height=32, codec="libx264")
    data = path.read_bytes()
    path.unlink()
    return data


def upload(client, name, data, **kw):
    return client.post("/api/uploads", params={"name": name}, content=data, **kw)


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.exists() else []


def test_uploads_are_stored_by_content_once(tmp_path):
    client, _ = make_client(tmp_path)
    uploads = (tmp_path / "out" / ".serve" / "uploads").resolve()
    png, mp4 = png_bytes(), mp4_bytes(tmp_path)
    seen = {}
    for name, data, kind in (("still.png", png, "image"), ("dance.mp4", mp4, "video")):
        response = upload(client, name, data, headers={"content-type": "application/octet-stream"})
        assert response.status_code == 201, response.text
        body = response.json()
        digest = hashlib.sha256(data).hexdigest()
        expected = uploads / digest[:16] / name
        assert body == {"path": str(expected), "source": str(expected), "bytes": len(data), "sha256": digest,
                        "kind": kind}
        assert expected.read_bytes() == data
        seen[name] = expected.stat()
    # The same bytes again (any Content-Type): the same path, and the file there is not written again.
    again = upload(client, "dance.mp4", mp4, headers={"content-type": "video/mp4"})
    assert again.status_code == 201 and again.json()["path"] == str(uploads / hashlib.sha256(mp4).hexdigest()[:16]
                                                                    / "dance.mp4")
    after = (uploads / hashlib.sha256(mp4).hexdigest()[:16] / "dance.mp4").stat()
    assert (after.st_ino, after.st_mtime_ns) == (seen["dance.mp4"].st_ino, seen["dance.mp4"].st_mtime_ns)
    # Other bytes under the same name: another folder. A name is kept readable, not trusted.
    other = upload(client, "still.png", png_bytes(level=7)).json()["path"]
    assert other != str(uploads / hashlib.sha256(png).hexdigest()[:16] / "still.png")
    odd = upload(client, "My Dänce (1).MOV", mp4)
    assert odd.status_code == 201 and odd.json()["path"].endswith("/My-Dance-1.mov") and odd.json()["kind"] == "video"
    assert upload(client, "pose.json", b'{"people": []}').json()["kind"] == "json"
    assert len(files_under(uploads)) == 5
    assert not [p for p in files_under(tmp_path / "out") if ".part" in p.name]
    assert client.get("/api/outputs").json()["files"] == []  # uploads are inputs, never served back
    assert ".mp4" in client.get("/api/options").json()["uploads"]["video"]


def test_a_file_of_another_kind_is_422_in_one_line(tmp_path):
    client, _ = make_client(tmp_path)
    response = upload(client, "evil.exe", b"MZ\x90\x00")
    assert response.status_code == 422
    body = response.json()
    assert "\n" not in body["detail"] and body["detail"].startswith("name: .exe cannot be uploaded (got 'evil.exe')")
    assert ".mp4" in body["detail"] and ".png" in body["detail"] and "OpenPose .json" in body["detail"]
    [error] = body["errors"]
    assert (error["field"], error["value"], error["event"]) == ("name", "evil.exe", "error")
    for name in (None, "", "noextension", "script.yaml"):
        refused = client.post("/api/uploads", params={} if name is None else {"name": name}, content=b"x")
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "name", name
    empty = upload(client, "still.png", b"")
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    assert files_under(tmp_path / "out") == []


def test_a_name_never_reaches_outside_the_uploads_folder(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    config = ServeConfig(out=out)
    client = TestClient(create_app(config, JobQueue(config, start=False)), base_url="http://127.0.0.1:7860")
    for name in ("../../etc/x.png", "../x.png", "..", "sub/x.png", "/tmp/x.png", "a\\..\\x.png", "x\x00.png",
                 ".x.png", "..png", "x\n.png", "./x.png"):
        response = upload(client, name, png_bytes())
        assert response.status_code == 422, (name, response.text)
        assert response.json()["errors"][0]["field"] == "name" and "\n" not in response.json()["detail"]
    assert files_under(tmp_path) == []
    # A Windows device name is kept off the disk's device names, inside the folder.
    reserved = upload(client, "con.png", png_bytes())
    assert reserved.status_code == 201 and reserved.json()["path"].endswith("/con-file.png")
    assert [p.resolve() for p in files_under(tmp_path)] == [Path(reserved.json()["path"])]
    assert Path(reserved.json()["path"]).parent.parent == config.uploads


def test_an_upload_over_its_kind_limit_is_413_and_leaves_nothing(tmp_path):
    client, _ = make_client(tmp_path, limits=Limits.parse(["image=1k"]), max_body=500)
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * 2092  # 2100 bytes
    declared = upload(client, "big.png", big)
    assert declared.status_code == 413
    detail = declared.json()["detail"]
    assert "\n" not in detail and detail.startswith("image upload is 2.1 kB, more than the server's `image` limit of 1 kB") and "--limit image=2.1k" in detail
    chunked = upload(client, "big.png", iter([big[:700], big[700:1400], big[1400:]]))  # no Content-Length
    assert chunked.status_code == 413 and "is more than the server's `image` limit of 1 kB" in chunked.json()["detail"]
    assert files_under(tmp_path / "out") == []  # no temp file either
    # Within the kind's limit, an upload is not held to --max-body (that is for scripts and clips).
    fits = upload(client, "fits.png", png_bytes() + b"\0" * 600)
    assert fits.status_code == 201, fits.text
    video = upload(client, "dance.mp4", mp4_bytes(tmp_path))  # the video limit (2 GB) is the one that counts
    assert video.status_code == 201, video.text
    assert len(files_under(tmp_path / "out")) == 2
    script = client.post("/api/clips", json={**CLIP, "prompt": "x" * 600})
    assert script.status_code == 413  # the script body limit still holds


def test_uploads_count_as_an_input_root_and_nothing_else_under_out(kit, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    client, queue = make_client(tmp_path, input_roots=[inputs])
    image = upload(client, "first.png", png_bytes(32)).json()["source"]
    video = upload(client, "shot.mp4", mp4_bytes(tmp_path)).json()["source"]
    keyframed = client.post("/api/clips", json={**CLIP, "name": "kf", "keyframes": {0: image}, "sparsectrl": "tiny"})
    assert keyframed.status_code == 201, keyframed.text
    v2v = client.post("/api/clips", json={**CLIP, "name": "v2v", "init_video": {"source": video, "strength": 0.5}})
    assert v2v.status_code == 201, v2v.text
    assert len(queue.jobs) == 2
    # The same files elsewhere under the output root (a clip's folder, the server's own state) stay refused.
    out = tmp_path / "out"
    for folder in (out / "demo", out / ".serve" / "jobs", out / ".serve"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "first.png").write_bytes(png_bytes(32))
        (folder / "shot.mp4").write_bytes(open(video, "rb").read())
        for fields, field in (({"keyframes": {0: str(folder / "first.png")}, "sparsectrl": "tiny"}, "keyframes[0]"),
                              ({"init_video": {"source": str(folder / "shot.mp4")}}, "init_video.source"),
                              ({"pose": {"source": str(folder / "shot.mp4"), "controlnet": "tiny"}}, "pose.source")):
            response = client.post("/api/clips", json={**CLIP, **fields})
            assert response.status_code == 422, (folder, field, response.text)
            error = response.json()["errors"][0]
            assert error["field"] == field and "outside the server's input roots" in error["message"], error
            assert "POST /api/uploads" in error["hint"]
    # A link planted in the uploads folder that points elsewhere is followed, and refused.
    link = out / ".serve" / "uploads" / "elsewhere.png"
    link.symlink_to(out / "demo" / "first.png")
    response = client.post("/api/clips", json={**CLIP, "keyframes": {0: str(link)}, "sparsectrl": "tiny"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "keyframes[0]"
    assert len(queue.jobs) == 2


def test_the_token_guard_covers_uploads(tmp_path):
    client, _ = make_client(tmp_path, token=TOKEN)
    assert upload(client, "still.png", png_bytes()).status_code == 401
    wrong = upload(client, "still.png", png_bytes(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    evil = upload(client, "still.png", png_bytes(), headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert files_under(tmp_path / "out") == []
    ok = upload(client, "still.png", png_bytes(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201 and len(files_under(tmp_path / "out")) == 1


def test_a_temp_file_left_by_a_killed_upload_is_swept_on_start(tmp_path):
    uploads = tmp_path / "out" / ".serve" / "uploads"
    uploads.mkdir(parents=True)
    stale = uploads / ".upload.wabcdef-1-0123abcd.part.mp4"  # another host's writer, a day and more old
    stale.write_bytes(b"half a video")
    os.utime(stale, (1, 1))
    kept = uploads / "0123456789abcdef" / "dance.mp4"
    kept.parent.mkdir()
    kept.write_bytes(b"a whole one")
    make_client(tmp_path)
    assert files_under(uploads) == [kept]


def test_the_page_uploads_a_picked_pose_and_init_video(tmp_path):
    from test_gallery_browser import CHROMIUM
    from test_serve_page import ARGS

    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    config = ServeConfig(out=tmp_path / "out", device="cpu")
    app = create_app(config, JobQueue(config, start=False))
    video = write_video(tmp_path / "shot.mp4", constant_rate(4, 8), width=32, height=32, codec="libx264")
    digest = hashlib.sha256(video.read_bytes()).hexdigest()[:16]
    stored = str(config.uploads / digest / "shot.mp4")
    with running_server(app, free_port()) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            assert ".mp4" in page.get_attribute("#init-video-file", "accept")
            assert ".json" in page.get_attribute("#pose-file", "accept")
            page.select_option("#preset", "tiny")
            page.fill("#prompt", "a dancer")
            page.set_input_files("#init-video-file", str(video))
            page.wait_for_function("document.querySelector('#init-video').value !== ''", timeout=30_000)
            page.fill("#init-strength", "0.5")
            page.set_input_files("#pose-file", str(video))
            page.wait_for_function("document.querySelector('#pose-source').value !== ''", timeout=30_000)
            fields = page.evaluate("clipFields()")
            page.set_input_files("#pose-file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"})
            page.wait_for_selector("#form-errors li", timeout=30_000)
            error = page.text_content("#form-errors li")
            pose_after = page.input_value("#pose-source")
        finally:
            browser.close()
    assert fields["init_video"] == {"source": stored, "strength": 0.5}
    assert fields["pose"] == {"source": stored, "controlnet": "tiny"}
    assert "cannot be uploaded" in error and "notes.txt" in error and pose_after == ""
    assert (config.uploads / digest / "shot.mp4").read_bytes() == video.read_bytes()
