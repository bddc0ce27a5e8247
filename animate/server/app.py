"""The FastAPI app of `animate serve`: the API (jobs, their `--json` events as Server-Sent Events, uploads,
outputs, history), the page, and the guards every request passes (host, token, origin, body size)."""
from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, \
    StreamingResponse

from animate.util.atomic import sweep_partials
from animate.errors import AnimateError
from animate.events import error_events
from animate.server.config import ServeConfig, is_local
from animate.server.inputs import Submission, checked_stem, clip_script, suffix_for
from animate.server.queue import FINISHED, JobQueue, QueueFull
from animate import __version__
from animate.encode.targets import target_names
from animate.errors import ConfigError
from animate.models.schedulers import SCHEDULERS
from animate.models.sources import KNOWN_MODELS, TINY_MODELS
from animate.outputs.records import read_sidecar
from animate.server.history import history, script_for
from animate.server.uploads import Incoming, checked_name, over_limit, suffixes
from animate.spec import OUTPUT_FORMATS, list_presets
import yaml
from animate.outputs.layout import INTERNAL_DIRS

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "animate_token"
SSE_POLL_S = 0.05
MAX_LISTED = 5000
UPLOADS_PATH = "/api/uploads"


class TooLarge(Exception):
    """A request body past the server's size limit, or an upload past its kind's limit (answered 413)."""


def create_app(config: ServeConfig, queue: JobQueue | None = None) -> FastAPI:
    """The app: every route is a short closure over this server's `config` and `queue`, registered here in the
    order of the page's calls (FastAPI's app-factory idiom). That is why this function is long: the routes are its
    body, each a few lines that check the request and hand the work to `animate.run` through the queue."""
    app = FastAPI(title="animate serve", version=_version(),
                  description="Submit prompt scripts or single clips, follow their events, fetch their outputs; "
                              "upload the pose videos, init videos and keyframe images they name.")
    queue = queue or JobQueue(config)
    app.state.queue, app.state.config = queue, config
    sweep_partials(config.uploads)  # the temp files of uploads a killed server was receiving

    @app.middleware("http")
    async def guard(request: Request, call_next):
        problem = _refused(request, config)
        if problem is not None:
            return problem
        response = await call_next(request)
        given = request.query_params.get("token")
        if config.token and given and secrets.compare_digest(given, config.token):
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(AnimateError)
    async def invalid(request: Request, exc: AnimateError):
        # The same error events `animate render --json` prints, one per problem.
        return JSONResponse({"detail": exc.line(), "errors": [e.to_dict() for e in error_events(exc, fatal=True)]},
                            status_code=422)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge):
        detail = str(exc) or f"request body is larger than {config.max_body} bytes"
        return JSONResponse({"detail": detail}, status_code=413)

    @app.exception_handler(QueueFull)
    async def full(request: Request, exc: QueueFull):
        return JSONResponse({"detail": f"{exc}; try again when some have run"}, status_code=429)

    # ------------------------------------------------------------------ the page
    @app.get("/", include_in_schema=False)
    async def page(request: Request):
        if request.query_params.get("token"):  # the cookie is set by the guard; keep the token out of the URL bar
            return RedirectResponse("/", status_code=303)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        path = STATIC / name
        if name.startswith(".") or "/" in name or not path.is_file():
            return _not_found()
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @app.get("/api/options")
    async def options():
        return _options(config)

    # ------------------------------------------------------------------ jobs
    @app.post("/api/jobs", status_code=201)
    async def submit_script(request: Request, name: str | None = None):
        """A whole script (YAML, JSON or TOML body, by Content-Type); `name` is its output folder."""
        text = (await _body(request, config)).decode("utf-8", errors="replace")
        sub = Submission(checked_stem(name), suffix_for(request.headers.get("content-type")), text)
        job = await asyncio.to_thread(queue.submit, sub)
        return job.public()

    @app.post("/api/clips", status_code=201)
    async def submit_clip(request: Request, script: str | None = None):
        """One clip: a JSON object of the fields a script's clip takes (name optional)."""
        body = await _body(request, config)
        try:
            fields = json.loads(body or b"{}")
        except ValueError as exc:
            raise _config_error(f"the body is not JSON ({exc})", "give the clip's fields as a JSON object")
        sub = Submission(checked_stem(script), ".json", clip_script(fields))
        job = await asyncio.to_thread(queue.submit, sub)
        return job.public()

    # ------------------------------------------------------------------ uploads
    @app.post(UPLOADS_PATH, status_code=201)
    async def upload(request: Request, name: str | None = None):
        """A pose or init video, a keyframe image or an OpenPose .json: the raw file as the body (any Content-Type),
        `name` its file name. Stored under OUT/.serve/uploads/<sha256[:16]>/; `source` is what a script names."""

        stored, kind = checked_name(name)
        limit = getattr(config.limits, kind)
        declared = request.headers.get("content-length")
        if limit is not None and declared is not None and int(declared) > limit:  # the guard made sure it's digits
            raise TooLarge(over_limit(kind, int(declared), config.limits, exact=True))
        with Incoming(config, stored, kind) as incoming:
            async for chunk in request.stream():
                incoming.write(chunk)
                if limit is not None and incoming.size > limit:
                    raise TooLarge(over_limit(kind, incoming.size, config.limits, exact=False))
            return await asyncio.to_thread(incoming.finish)

    @app.get("/api/jobs")
    async def jobs():
        return {"jobs": [job.public() for job in reversed(list(queue.jobs.values()))]}

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        job = queue.jobs.get(job_id)
        return job.public() if job else _not_found()

    @app.get("/api/jobs/{job_id}/script")
    async def job_script(job_id: str):
        job = queue.jobs.get(job_id)
        return PlainTextResponse(job.text) if job else _not_found()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        """Server-Sent Events: every `--json` event of the job's run (from the first), until it finishes."""
        job = queue.jobs.get(job_id)
        if job is None:
            return _not_found()
        try:
            start = int(request.headers.get("last-event-id", -1)) + 1
        except ValueError:
            start = 0
        return StreamingResponse(_sse(job, request, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}/preview.png")
    async def job_preview(job_id: str):
        """The latest latent preview of the job's current clip (a cheap RGB approximation of its latents)."""
        job = queue.jobs.get(job_id)
        if job is None or job.preview is None:
            return _not_found()
        return Response(job.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.delete("/api/jobs/{job_id}")
    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        """Drop a queued job, or stop a running one before its next denoising step."""
        job = queue.cancel(job_id)
        return job.public() if job else _not_found()

    # ------------------------------------------------------------------ outputs and history
    @app.get("/api/outputs")
    async def outputs():
        return {"files": await asyncio.to_thread(_list_outputs, config.out)}

    @app.get("/api/outputs/{path:path}")
    async def output(path: str):
        found = contained(config.out, path)
        return FileResponse(found) if found is not None else _not_found()

    @app.get("/api/history")
    async def past():
        return {"clips": await asyncio.to_thread(history, config.out)}

    @app.get("/api/history/{script}/{stem}/script")
    async def past_script(script: str, stem: str):
        """The YAML of a one-clip script that renders this recorded clip again (`animate render FILE`)."""

        found = contained(config.out, f"{script}/{stem}.json")
        spec = read_sidecar(found).get("spec") if found is not None else None
        if not spec:
            return _not_found()
        text = yaml.safe_dump(script_for(spec), sort_keys=False, allow_unicode=True)
        return PlainTextResponse(text, media_type="application/yaml")

    return app


# ---------------------------------------------------------------------- guards
def _refused(request: Request, config: ServeConfig) -> Response | None:
    """A response refusing the request, or None: unknown Host on a local bind (DNS rebinding), a missing or
    wrong token, a cross-site write, a declared body over the limit."""
    host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    if is_local(config.host) and host and not is_local(host):
        return JSONResponse({"detail": f"host {host!r} is not this server"}, status_code=403)
    if config.token and not _has_token(request, config.token):
        return JSONResponse({"detail": "missing or wrong token; send `Authorization: Bearer TOKEN` (or open the "
                             "page as /?token=TOKEN)"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    origin = request.headers.get("origin")
    if request.method not in ("GET", "HEAD", "OPTIONS") and origin and origin != "null" \
            and urlsplit(origin).netloc != request.headers.get("host"):
        return JSONResponse({"detail": "cross-site requests are refused"}, status_code=403)
    length = request.headers.get("content-length")
    limit = None if request.url.path == UPLOADS_PATH else config.max_body  # an upload has its kind's limit
    if length is not None and (not length.isdigit() or limit is not None and int(length) > limit):
        return JSONResponse({"detail": f"request body is larger than {config.max_body} bytes"}, status_code=413)
    return None


def _has_token(request: Request, token: str) -> bool:
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    given = given or request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token")
    return bool(given) and secrets.compare_digest(given.encode(), token.encode())


async def _body(request: Request, config: ServeConfig) -> bytes:
    """The body, read no further than the limit (a chunked upload has no Content-Length to refuse up front)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > config.max_body:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def contained(root: Path, relative: str) -> Path | None:
    """The file `relative` names under `root`, or None (nothing opened) when it names anything else: an absolute
    path, `..`, the server's own state, a link out of the root, a folder, a missing file."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    rel = Path(relative)
    if rel.is_absolute() or any(part in ("..", ".") or part in INTERNAL_DIRS for part in rel.parts):
        return None
    path = (root / rel).resolve()
    inside = path.is_relative_to(root.resolve())
    if not inside or any(p in INTERNAL_DIRS for p in path.relative_to(root.resolve()).parts):
        return None
    return path if path.is_file() else None


def _list_outputs(root: Path) -> list[dict]:
    files = []
    if not root.is_dir():
        return files
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or path.is_symlink():
            continue
        files.append({"path": rel.as_posix(), "bytes": path.stat().st_size})
        if len(files) >= MAX_LISTED:
            break
    return files


async def _sse(job, request: Request, start: int):
    sent = max(0, start)
    while True:
        finished = job.status in FINISHED  # read before the events: every event of a finished job is in
        lines = job.events[sent:]
        for line in lines:
            name = json.loads(line)["event"]
            yield f"id: {sent}\nevent: {name}\ndata: {line}\n\n"
            sent += 1
        if finished:
            return
        if not lines:
            if await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_S)


def _options(config: ServeConfig) -> dict:
    """What the page offers: presets, known models by role, local model folders and files under the input roots,
    schedulers, formats and targets, the extensions an upload may have by kind."""

    roles: dict[str, list[str]] = {}
    for name, info in KNOWN_MODELS.items():
        roles.setdefault(info["role"], []).append(name)
    for name, (_, role, _) in TINY_MODELS.items():
        roles.setdefault(role, []).append(name)
    local = []
    for root in config.input_roots:
        for path in sorted(root.glob("*")) + sorted(root.glob("*/*")):
            if path.name.startswith("."):
                continue
            if path.is_dir() and ((path / "model_index.json").is_file() or (path / "config.json").is_file()):
                local.append({"path": str(path), "kind": "folder"})
            elif path.suffix == ".safetensors":
                local.append({"path": str(path), "kind": "file"})
    return {"presets": list_presets(), "models": {k: sorted(v) for k, v in roles.items()}, "local": local[:500],
            "schedulers": sorted(SCHEDULERS), "formats": list(OUTPUT_FORMATS), "targets": target_names(),
            "out": str(config.out), "input_roots": [str(r) for r in config.input_roots], "uploads": suffixes()}


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": "not found"}, status_code=404)


def _config_error(message: str, hint: str):
    return ConfigError(message, where="clip", hint=hint)


def _version() -> str:
    return __version__
