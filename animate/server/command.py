"""`animate serve`: the local web app and HTTP API (pip install "animate[serve]")."""
from __future__ import annotations

import secrets
from pathlib import Path

import click

from animate.errors import ConfigError
from animate.rendering.device import pick_device
from animate.run.limits import Limits
from animate.server.config import MAX_BODY_BYTES, ServeConfig, is_local


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but localhost needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs"), show_default=True,
              help="Output root: clips go to OUT/<script name>/, queued jobs to OUT/.serve/jobs/.")
@click.option("--token", envvar="ANIMATE_SERVE_TOKEN",
              help="Every request must carry it (Authorization: Bearer TOKEN, or the page opened as /?token=TOKEN); "
                   "`auto` generates one and prints it. Also read from ANIMATE_SERVE_TOKEN.")
@click.option("--input-root", "input_roots", multiple=True, type=click.Path(file_okay=False, exists=True,
                                                                              path_type=Path),
              help="A folder submitted scripts may name files in (models, LoRAs, poses; repeatable). The first one "
                   "is where their relative paths resolve.")
@click.option("--device", default="auto", show_default=True, help="auto | cuda | cuda:N | mps | cpu")
@click.option("--dtype", default="auto", show_default=True, help="auto | fp32 | fp16 | bf16")
@click.option("--max-body", type=int, default=None, help="Largest request body in bytes (default 2 MB).")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE",
              help="A script resource limit, as for `animate render --limit` (repeatable).")
def serve(host, port, out, token, input_roots, device, dtype, max_body, limit_items):
    """Serve the page and the HTTP API, with one warm Renderer."""

    if not is_local(host) and not token:
        raise ConfigError(f"--host {host} lets other machines connect, so it needs a token",
                          where="--token", hint="add --token TOKEN (or --token auto to generate one)")
    if token == "auto":
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise ConfigError("the token is shorter than 16 characters", where="--token",
                          hint="use a long random one, or --token auto")
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ConfigError(f"`animate serve` needs {exc.name}", where="serve",
                          hint='pip install "animate[serve]"') from None
    from animate.server.app import create_app

    config = ServeConfig(out=out, host=host, port=port, token=token, input_roots=list(input_roots),
                         max_body=max_body or MAX_BODY_BYTES, limits=Limits.parse(limit_items),
                         device=pick_device(None if device == "auto" else device),
                         dtype=None if dtype == "auto" else dtype)
    config.out.mkdir(parents=True, exist_ok=True)
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    waiting = len(app.state.queue.waiting)
    click.echo(f"animate serve: {url}  (outputs: {config.out}"
               + (f"; {waiting} unfinished job(s) resumed" if waiting else "") + ")", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        app.state.queue.stop()
