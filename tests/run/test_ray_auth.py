"""`--backend ray --address` and Ray's token authentication (Ray >= 2.52; `ray start --head` turns it on from 2.59
when it finds a token): the driver joins in the cluster's own mode without RAY_AUTH_MODE set by hand, and a
missing or wrong token is one line naming the fix. The unit tests meet a fake GCS that answers as Ray 2.60's does
(its refusals copied from real runs); the last test starts a real head with `ray start --head`."""
import os
import signal
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from animate.cli import main

RAY_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
ADDRESS = "127.0.0.1:46379"
TOKEN = "5f" * 32
# What Ray's GCS client raises (ray.exceptions.AuthenticationError) when the cluster turns the driver away...
ENSURE = ("Ensure that the token for the cluster is available in a local file (e.g., ~/.ray/auth_token or via "
          "RAY_AUTH_TOKEN_PATH) or as the `RAY_AUTH_TOKEN` environment variable.")
REFUSED_NONE_SENT = ("RPC error: InvalidAuthToken: Authentication token is missing or incorrect. Note: RAY_AUTH_MODE "
                     f"is currently 'disabled' (not 'token'). {ENSURE}")
REFUSED_WRONG = f"RPC error: InvalidAuthToken: Authentication token is missing or incorrect. {ENSURE}"
# ... and how `ray.init(address=...)` reports the same after ~20 s of retries.
INIT_REFUSED = ("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
                '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
                "ray.exceptions.AuthenticationError: {}\n")
FIX = ("run `ray get-auth-token` on the head node and set RAY_AUTH_TOKEN to what it prints here, or copy the "
       "head's ~/.ray/auth_token to this machine")


class Cluster:
    """A Ray cluster at ADDRESS as the driver meets it: `token` None means no auth; `up` False, nothing answers."""

    def __init__(self):
        self.token, self.up, self.inits = TOKEN, True, []

    def refusal(self):
        """What the GCS says to this process's auth mode and token: an exception, or None."""
        import ray
        from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode

        if not self.up:
            return ray.exceptions.RpcError("Timed out while waiting for GCS to become available.")
        if self.token is None:
            return None
        if get_authentication_mode() != AuthenticationMode.TOKEN:
            return ray.exceptions.AuthenticationError(REFUSED_NONE_SENT)
        if AuthenticationTokenLoader.instance().get_raw_token(ignore_auth_mode=True) != self.token:
            return ray.exceptions.AuthenticationError(REFUSED_WRONG)
        return None

    def gcs_client(self, address):
        """ray._raylet.GcsClient(address=...)."""
        assert address == ADDRESS
        refused = self.refusal()
        if refused is not None:
            raise refused
        return object()

    def init(self, address=None, **kwargs):
        """ray.init: the mode the driver joined in is what its workers must share; a refusal as Ray raises it."""
        from ray._raylet import AuthenticationMode, get_authentication_mode

        assert address == ADDRESS
        self.inits.append("token" if get_authentication_mode() == AuthenticationMode.TOKEN else "disabled")
        refused = self.refusal()
        if refused is not None:
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}") from RuntimeError(
                INIT_REFUSED.format(refused) if "AuthenticationError" in type(refused).__name__ else str(refused))


@pytest.fixture
def cluster(tmp_path, kit):
    """A HOME of its own, no RAY_AUTH_* variable, and the fake cluster in Ray's place. Ray's cached auth mode and
    token are re-read on both ends, so nothing leaks into the session's other Ray tests."""
    ray = pytest.importorskip("ray")
    raylet = pytest.importorskip("ray._raylet")
    if not hasattr(raylet, "AuthenticationTokenLoader"):
        pytest.skip("this Ray has no token authentication")

    def reload():
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()

    fake = Cluster()
    with pytest.MonkeyPatch.context() as mp:
        for name in RAY_AUTH_VARS:  # recorded, so a mode Ray switches on in os.environ is undone too
            mp.setenv(name, "")
            mp.delenv(name)
        mp.setenv("HOME", str(tmp_path / "home"))
        mp.setattr(ray, "is_initialized", lambda: False)  # the session's local Ray may be up
        mp.setattr(ray, "init", fake.init)
        mp.setattr(raylet, "GcsClient", fake.gcs_client)
        reload()

        def setenv(name, value):  # as if set before this process started: Ray caches the mode and the token
            mp.setenv(name, value)
            reload()

        fake.mp, fake.setenv = mp, setenv
        yield fake
    reload()


def token_here(tmp_path, token=TOKEN):
    """The default token file, as `ray get-auth-token --generate` leaves it."""
    path = tmp_path / "home" / ".ray" / "auth_token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)


def connect():
    from animate.run.ray_backend import RayBackend

    return RayBackend(address=ADDRESS, gpus_per_worker=0).connect()


def render_at_address(tmp_path):
    script = tmp_path / "one.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "boat", "prompt": "a boat"}]}))
    return CliRunner().invoke(main, ["render", str(script), "--out", str(tmp_path / "o"), "--backend", "ray",
                                     "--address", ADDRESS, "--gpus-per-worker", "0", "--quiet"])


def test_a_token_here_joins_a_token_cluster_in_token_mode(cluster, tmp_path):
    """The default token file alone (as `ray start --head` found it) is enough: no RAY_AUTH_MODE by hand."""
    token_here(tmp_path)
    assert connect() is True
    assert cluster.inits == ["token"]


def test_a_cluster_without_auth_is_joined_without_a_token_even_with_one_here(cluster, tmp_path):
    """A token-mode driver passes such a GCS but turns its own workers away ("Missing authorization header")."""
    cluster.token = None
    token_here(tmp_path)
    assert connect() is True
    assert cluster.inits == ["disabled"]


def test_no_token_here_is_one_line_naming_the_fix_at_once(cluster, tmp_path):
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and cluster.inits == []  # asked once, no ~20 s of ray.init retries
    assert result.output.strip() == (
        f"error: --address: the Ray cluster at {ADDRESS} needs an auth token, and none was found here "
        f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); {FIX}")


def test_a_wrong_token_is_one_line_and_never_printed(cluster, tmp_path):
    secret = "0123456789abcdef" * 4
    cluster.setenv("RAY_AUTH_TOKEN", secret)
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and secret not in result.output
    assert result.output.strip() == (
        f"error: --address: the Ray cluster at {ADDRESS} refused the auth token found here (RAY_AUTH_TOKEN, "
        f"RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {FIX}")


def test_token_mode_by_hand_without_a_token_is_one_line_not_a_crash(cluster, tmp_path):
    """Ray's own check raises first: its GCS client in token mode with no token aborts the whole process."""
    cluster.setenv("RAY_AUTH_MODE", "token")
    result = render_at_address(tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --address: the Ray cluster at {ADDRESS} needs an auth token, and none was found here "
        f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); {FIX}"]


def test_auth_turned_off_by_hand_is_named(cluster, tmp_path):
    token_here(tmp_path)  # a token is here, but RAY_AUTH_MODE says not to send it
    cluster.setenv("RAY_AUTH_MODE", "disabled")
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and cluster.inits == []
    assert result.output.strip() == (
        f"error: --address: the Ray cluster at {ADDRESS} needs an auth token, and RAY_AUTH_MODE is 'disabled' "
        f"here; unset RAY_AUTH_MODE (or set it to token), and {FIX}")


def test_an_unreachable_cluster_still_says_how_to_start_one(cluster, tmp_path):
    cluster.up = False
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and cluster.inits == []
    assert result.output.strip() == (
        f"error: --address: cannot reach a Ray cluster at {ADDRESS}: Timed out while waiting for GCS to become "
        "available.; start it with `ray start --head` and give its address (host:6379), or leave --address out "
        "for a local Ray")


def test_where_the_probe_cannot_ask_ray_init_decides_and_its_refusal_is_one_line(cluster, tmp_path):
    """A GCS client of another signature: token mode when a token is here, as before, and ray.init's own
    ConnectionError over "AuthenticationError ... InvalidAuthToken" is read as the refusal it is."""
    import ray._raylet

    def other_client(address, something_new):
        raise AssertionError("not called")

    cluster.mp.setattr(ray._raylet, "GcsClient", other_client)
    token_here(tmp_path, "0" * 64)
    result = render_at_address(tmp_path)
    assert result.exit_code == 2 and cluster.inits == ["token"]
    assert result.output.strip() == (
        f"error: --address: the Ray cluster at {ADDRESS} refused the auth token found here (RAY_AUTH_TOKEN, "
        f"RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {FIX}")


# ---------------------------------------------------------------------------------------------- a real head
def free_port() -> int:
    """A port no socket holds on any address, below the ephemeral range: Ray's servers bind the machine's own
    address with SO_REUSEPORT, so a port that looks free on 127.0.0.1 may be another Ray's, and a port the
    kernel hands out for `bind(0)` may be taken by any Ray process starting meanwhile."""
    import random
    import socket

    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("", port))  # the wildcard conflicts with a holder on any address
            except OSError:
                continue
            return port
    pytest.skip("no free port in 20000-32000")


@pytest.fixture
def ray_head(tmp_path):
    """A real head as the README starts it (`ray start --head`), on this machine with its own HOME holding a
    token (so Ray >= 2.59 turns token auth on) and no RAY_* variable; stopped by its pid, not `ray stop` (which
    stops every Ray on the machine). Yields (port, the env a person on that machine has)."""
    import secrets
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    cli = Path(sys.executable).with_name("ray")
    if not cli.exists():
        pytest.skip("no `ray` CLI beside this Python")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths under it must fit 107 bytes
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_TMPDIR=temp, PYTHONPATH=os.pathsep.join(  # this checkout, on the "node" too
        [repo, *filter(None, [os.environ.get("PYTHONPATH")])]))
    port = free_port()
    log = tmp_path / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen([str(cli), "start", "--head", "--port", str(port), "--num-cpus", "2",
                                 "--include-dashboard=false", "--disable-usage-stats", "--block"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        if "Token authentication is enabled" not in log.read_text():
            pytest.skip("this Ray's `ray start --head` leaves token auth off")
        yield port, env
    finally:
        head.terminate()  # `--block` stops the head's processes as it exits
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_render_against_a_plain_ray_start_head_with_token_auth(ray_head, kit, tmp_path):
    """The README's cluster steps: `ray start --head`, then `animate render --backend ray --address`, with no
    RAY_AUTH_MODE set by hand; a wrong token there is one line on stderr, at once."""
    import json
    import subprocess

    port, env = ray_head
    script = tmp_path / "one.yaml"
    script.write_text(yaml.safe_dump({"version": 1, "defaults": {
        "preset": "tiny", "frames": 4, "width": 32, "height": 32, "steps": 1, "outputs": ["gif"]},
        "clips": [{"name": "boat", "prompt": "a boat"}]}))
    render = [sys.executable, "-m", "animate.cli", "render", str(script), "--backend", "ray", "--address",
              f"127.0.0.1:{port}", "--gpus-per-worker", "0", "--workers", "1", "--out", str(tmp_path / "out"),
              "--quiet"]
    wrong = "0123456789abcdef" * 4
    refused = subprocess.run(render, env={**env, "RAY_AUTH_TOKEN": wrong}, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"error: --address: the Ray cluster at 127.0.0.1:{port} refused the auth token found here (RAY_AUTH_TOKEN, "
        f"RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {FIX}"]

    done = subprocess.run(render, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:] + (tmp_path / "head.log").read_text()[-2000:]
    manifest = (tmp_path / "out" / "one" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in manifest] == ["boat"]
    token = (tmp_path / "home" / ".ray" / "auth_token").read_text()
    assert token not in done.stdout + done.stderr
