"""A hub id with no network (HF_HUB_OFFLINE unset): one short probe, then the first missing source is named."""
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from animate.models import sources as models
from animate.run.checks import check_specs
from animate.cli import main
from animate.errors import ModelError
from animate.spec import spec_from_fields
from cli_helpers import assert_one_error_line


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on return: nothing listens there


class Connections:
    """Connections made to one local port."""

    def __init__(self, port: int):
        self.port, self.count = port, 0


@pytest.fixture
def hub_at(monkeypatch):
    """Point the hub client at a local port with offline mode off; count the connections made to it."""
    from huggingface_hub import constants

    connect = socket.create_connection

    def point(port: int) -> Connections:
        seen = Connections(port)

        def counting(address, *args, **kwargs):
            if tuple(address[:2]) == ("127.0.0.1", port):
                seen.count += 1
            return connect(address, *args, **kwargs)

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setattr(socket, "create_connection", counting)
        models._probe.cache_clear()
        return seen

    yield point
    models._probe.cache_clear()


def missing_stack(tiny_fields, **fields):
    return spec_from_fields({**tiny_fields, "frames": 4, "outputs": ["png"], "model": "someone/missing-base",
                             "motion_adapter": "someone/missing-motion", **fields})


def test_the_model_is_named_first_after_one_probe(kit, hub_at, tiny_fields):
    attempts = hub_at(closed_port())
    with pytest.raises(ModelError) as err:
        check_specs(missing_stack(tiny_fields))
    line = err.value.line()
    assert "clip clip: model: hub id someone/missing-base is not in the local cache" in line
    assert "cannot be reached" in line and "missing-motion" not in line
    assert attempts.count == 1
    with pytest.raises(ModelError):  # the answer is kept for the process
        check_specs(missing_stack(tiny_fields, seed=5))
    assert attempts.count == 1


def test_cached_sources_need_no_probe(kit, hub_at, tiny_fields):
    attempts = hub_at(closed_port())
    check_specs(spec_from_fields({**tiny_fields, "frames": 4, "outputs": ["png"]}))
    assert attempts.count == 0


def test_an_adapter_hub_id_is_named_when_the_stack_is_local(kit, hub_at, tiny_fields):
    hub_at(closed_port())
    specs = spec_from_fields({**tiny_fields, "frames": 4, "outputs": ["png"],
                              "adapters": [{"name": "zoom", "source": "someone/missing-lora"}]})
    with pytest.raises(ModelError, match=r"clip clip: adapters\[0\] \(zoom\): hub id someone/missing-lora"):
        check_specs(specs)


def test_render_names_the_model_not_the_motion_adapter(kit, hub_at, tmp_path):
    attempts = hub_at(closed_port())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", "--prompt", "x", "--preset", "tiny", "--frames", "4",
                                       "--model", "someone/missing-base", "--motion-adapter", "someone/missing-motion",
                                       "--out", str(out), "--quiet", "--device", "cpu"])
    assert_one_error_line(result, out, "command line: clip x: model: hub id someone/missing-base",
                          "cannot be reached", "local folder")
    assert attempts.count == 1


class _Hub(BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass  # keep the test output quiet


def test_a_hub_that_answers_keeps_uncached_ids_working(kit, hub_at, tiny_fields):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        attempts = hub_at(server.server_address[1])
        check_specs(missing_stack(tiny_fields))  # downloads are the render's job: nothing refused here
    finally:
        server.shutdown()
        server.server_close()
    assert attempts.count == 1
