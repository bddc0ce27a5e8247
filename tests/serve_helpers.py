"""Shared pieces of the `animate serve` tests: a tiny script and clip, a test client on a server that renders
nothing, an in-process server on a free port."""
import contextlib
import socket
import threading
import time

TINY_SCRIPT = """\
version: 1
defaults: {model: tiny, motion_adapter: tiny, scheduler: lcm, steps: 2, guidance: 1.0, frames: 4, width: 32,
           height: 32, seed: 3, negative: blurry}
clips:
  - {name: fox, prompt: a red fox in snow}
  - {name: owl, prompt: {0: an owl at dusk, 2: an owl at night}, outputs: [gif, mp4]}
"""
TOKEN = "s3cret-token-0123456789"
CLIP = {"prompt": "a fox", "model": "tiny", "motion_adapter": "tiny", "steps": 2, "frames": 4, "width": 32,
        "height": 32, "scheduler": "lcm", "guidance": 1.0}


def make_client(tmp_path, **kw):
    """A TestClient on an app whose queue never starts: for what is accepted, stored or refused."""
    from fastapi.testclient import TestClient

    from animate.server.app import create_app
    from animate.server.config import ServeConfig
    from animate.server.queue import JobQueue

    config = ServeConfig(out=tmp_path / "out", **kw)
    queue = JobQueue(config, start=False)
    return TestClient(create_app(config, queue), base_url="http://127.0.0.1:7860"), queue


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(app, port: int):
    """uvicorn serving `app` on 127.0.0.1:port in a thread (the page test's browser needs a real socket)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.queue.stop()
