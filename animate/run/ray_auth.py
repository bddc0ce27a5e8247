"""Joining a Ray cluster with token authentication (Ray >= 2.52; on by default for local clusters from 2.59, for
every cluster from 2.61): the driver joins in the cluster's own mode, switching to the token found here only when
the cluster refuses it, and a missing or wrong token is one line naming the fix. Workers take the mode and token
from their own node: nothing secret travels in the runtime env."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from animate.errors import ConfigError


AUTH_HINT = ("run `ray get-auth-token` on the head node and set RAY_AUTH_TOKEN to what it prints here, "
             "or copy the head's ~/.ray/auth_token to this machine")


def use_cluster_token() -> bool:
    """Switch this process to token mode when a token is here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH,
    ~/.ray/auth_token): True when the driver will send one. `ray.init` does this itself only for a cluster it finds
    on its own, never for an address, while `ray start --head` (Ray >= 2.59) turns token auth on whenever it finds
    a token. An explicit RAY_AUTH_MODE is left as it is. Workers need nothing from here: they inherit their node's
    mode, and read its token, from the raylet that starts them."""
    import logging

    try:  # Ray's own check and switch (the switch must also refresh Ray's cached config, not only the env var)
        from ray._private.authentication import authentication_token_setup as setup

        enable = setup.maybe_enable_token_auth_if_token_available
    except (ImportError, AttributeError):  # a Ray without token auth (< 2.52), or one that moved it
        return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    log = logging.getLogger(setup.__name__)
    level = log.level
    log.setLevel(logging.ERROR)  # its "token authentication is enabled ... opt out" notice is for `ray start`
    try:
        return bool(enable(warn_if_disabled=False))
    finally:
        log.setLevel(level)


@contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 for a moment: Ray's C++ client logs there directly, past Python's logging."""
    if os.environ.get("ANIMATE_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def gcs_client_class():
    """Ray's GCS client where this Ray has token auth (>= 2.52), else None."""
    try:
        from ray._private.authentication import authentication_token_setup  # noqa: F401 - only: is it there
        from ray._raylet import GcsClient
    except ImportError:
        return None
    return GcsClient


class NoProbe(Exception):
    """This Ray's GCS client cannot be asked the way `probe_cluster` does: `ray.init` decides."""


def probe_cluster(address: str) -> BaseException | None:
    """One quiet try at the cluster's GCS in this process's auth mode: what failed, or None. `ray.init` retries a
    refused token for ~20 s, printing a C++ warning each second, and then blames the connection; one client asks
    once (a refusal comes back in milliseconds)."""
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled

    try:  # token mode without a token: Ray's own AuthenticationError (a client would abort the process instead)
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    except Exception as exc:  # noqa: BLE001 - judged by the caller like ray.init's errors
        return exc
    with quiet_native_stderr():
        try:
            client = gcs_client_class()(address=address)
        except TypeError:  # another signature
            raise NoProbe from None
        except Exception as exc:  # noqa: BLE001 - AuthenticationError, or RpcError when nothing answers
            return exc
    del client
    return None


def settle_auth(address: str) -> tuple[bool, BaseException | None]:
    """(whether the driver sends a token, what the cluster said to it). The driver must join in the cluster's own
    mode, since the workers call back into it: a token-mode driver on a cluster without auth passes the GCS but
    turns its workers away ("Missing authorization header"), and a driver without a token is refused by a cluster
    with auth. So ask as Ray would (no token unless RAY_AUTH_MODE says so), and only on a refusal switch to the
    token found here and ask again. A Ray Client `ray://` address, "auto" or a Ray without token auth: no probe,
    token mode when a token is here, and `ray.init` decides."""
    try:
        if "://" in address or address == "auto" or gcs_client_class() is None:
            raise NoProbe
        if "RAY_AUTH_MODE" in os.environ:
            return use_cluster_token(), probe_cluster(address)
        refused = probe_cluster(address)
        if refused is not None and auth_refused(refused) and use_cluster_token():
            return True, probe_cluster(address)
        return False, refused
    except NoProbe:
        return use_cluster_token(), None


def auth_refused(exc: BaseException) -> bool:
    """Whether `ray.init` failed on the cluster's token auth: Ray raises AuthenticationError when token mode has
    no token, and a ConnectionError over a RuntimeError that quotes "AuthenticationError ... InvalidAuthToken"
    when the cluster turns the driver's token (or its missing one) away."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "AuthenticationError" or any(
                mark in str(exc) for mark in ("InvalidAuthToken", "AuthenticationError")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def auth_error(address: str, sent_token: bool, exc: BaseException) -> ConfigError:
    """One line for a token the cluster did not take, naming where the right one comes from (never the token)."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if sent_token and "no authentication token was found" not in str(exc):
        what = "refused the auth token found here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
    elif not sent_token and mode is not None:
        return ConfigError(f"the Ray cluster at {address} needs an auth token, and RAY_AUTH_MODE is {mode!r} here",
                           where="--address", hint=f"unset RAY_AUTH_MODE (or set it to token), and {AUTH_HINT}")
    else:
        what = "needs an auth token, and none was found here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)"
    return ConfigError(f"the Ray cluster at {address} {what}", where="--address", hint=AUTH_HINT)


def unreachable(address: str | None, exc: BaseException) -> ConfigError:
    return ConfigError(f"cannot reach a Ray cluster at {address}: {str(exc).splitlines()[0]}", where="--address",
                       hint="start it with `ray start --head` and give its address (host:6379), or leave --address "
                       "out for a local Ray")
