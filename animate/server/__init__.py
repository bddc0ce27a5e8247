"""`animate serve`: one process holding a warm Renderer behind an HTTP API and a page (static files, no build step).

    config.py   ServeConfig: where it binds, the token, the output root and the input roots, size limits
    inputs.py   submitted scripts and clips → checked ClipSpecs; every local path inside the allowed roots
    uploads.py  POST /api/uploads: input files stored content-addressed under <out>/.serve/uploads
    queue.py    the job queue, persisted under <out>/.serve/jobs, and its one worker thread
    preview.py  a cheap latent → RGB approximation for live previews
    history.py  past clips from the manifests; a sidecar back to the script that reproduces it
    app.py      the FastAPI app: API, SSE, outputs, the page
    command.py  the `animate serve` command

FastAPI and uvicorn are the optional extra `animate[serve]`; nothing here imports them at module level except
app.py, which only the command and tests import.
"""
