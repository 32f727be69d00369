"""The FastAPI application: the JSON API, the web pages and the security around both.

``create_app(runs)`` loads every run once (:mod:`graphonc.serve.state`) and returns the app;
``serve(...)`` runs it under uvicorn (``graphonc serve``). No interactive docs page: FastAPI's
Swagger UI loads its scripts from a CDN, and nothing is fetched from outside at run time; the
OpenAPI schema is at ``/openapi.json`` (token required like everything else).
"""
from __future__ import annotations

import gc
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from graphonc.errors import GraphoncError
from graphonc.serve.api import router as api_router
from graphonc.serve.lanes import Lanes
from graphonc.serve.newpatient import FieldErrors
from graphonc.serve.security import (COOKIE, MAX_BODY_BYTES, AuditLog, BodyLimit, Token, default_state_dir,
                                     resolve_token, token_matches)
from graphonc.serve.state import RunState, load_runs

log = logging.getLogger("graphonc.serve")
HERE = Path(__file__).parent
#: Paths served without a token: the login page and the stylesheet/script it needs.
OPEN_PATHS = ("/login", "/static/", "/favicon.ico")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _given_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.cookies.get(COOKIE)


def freeze_loaded_objects() -> None:
    """Move everything alive now (the loaded runs) out of the cyclic garbage collector's sight.

    A run at 100k patients is millions of long-lived Python objects (cohort facts, id maps);
    every full collection walked them all: 350 ms pauses, a few per minute under load, which
    were the service's whole p99 (cohort similar at 8 clients: p99 387 ms, p50 34 ms). Frozen
    objects are never collected, which is what they are: the runs live as long as the process.
    """
    gc.collect()
    gc.freeze()


def create_app(runs: list[Path] | dict[str, RunState], *, token: Token | None = None, state_dir: Path | None = None,
               audit_path: Path | None = None, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The service over ``runs`` (run folders, or runs already loaded by :func:`load_runs`)."""
    from graphonc.serve.ui import router as ui_router

    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    token = token or resolve_token(state_dir)
    audit = AuditLog(audit_path or state_dir / "audit.jsonl")
    loaded = runs if isinstance(runs, dict) else load_runs([Path(r) for r in runs])
    freeze_loaded_objects()
    lanes = Lanes()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        lanes.shutdown()

    app = FastAPI(title="graphonc", version=__import__("graphonc").__version__,
                  summary="Similar patients for the tumour board: neighbours, reasons, outcomes.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.runs, app.state.token, app.state.audit, app.state.lanes = loaded, token, audit, lanes

    @app.middleware("http")
    async def guard(request: Request, call_next):
        t0 = time.perf_counter()
        request.state.audit = {}
        path = request.url.path
        given = _given_token(request)
        ok = token_matches(token.value, given)
        if not ok and not any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS):
            if path.startswith("/api/") or path == "/openapi.json" or request.headers.get("authorization"):
                response = JSONResponse({"detail": "missing or wrong token"}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
            else:
                response = RedirectResponse("/login", status_code=303)
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None) or ("(static)" if path.startswith("/static/") else "(unmatched)")
        if not path.startswith("/static/"):
            a = request.state.audit
            audit.write(token=given if ok else None, method=request.method, endpoint=endpoint,
                        status=response.status_code, run=a.get("run"), patient_ids=a.get("patient_ids"),
                        new_patient=bool(a.get("new_patient")))
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        # the route template, never the path: paths carry patient ids
        log.info("%s %s %d %.0f ms", request.method, endpoint, response.status_code, 1000 * (time.perf_counter() - t0))
        return response

    def _is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.exception_handler(FieldErrors)
    async def field_errors(request: Request, exc: FieldErrors):
        if _is_api(request):
            return JSONResponse({"detail": exc.detail()}, status_code=422)
        from graphonc.serve.ui import error_page

        return error_page(request, 422, [f"{'.'.join(map(str, loc[1:]))}: {msg}" for loc, msg in exc.errors])

    @app.exception_handler(GraphoncError)
    async def graphonc_error(request: Request, exc: GraphoncError):
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        from graphonc.serve.ui import error_page

        return error_page(request, 400, [str(exc)])

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # FastAPI's own 422, without echoing the input (it may hold clinical values)
        detail = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; answered so browsers log no 404

    @app.get("/robots.txt", include_in_schema=False)
    def robots() -> PlainTextResponse:
        return PlainTextResponse("User-agent: *\nDisallow: /\n")

    app.add_middleware(BodyLimit, limit=max_body)  # outermost: before anything reads the body
    app.include_router(api_router)
    app.include_router(ui_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


#: Environment variable carrying ``serve --workers N``'s settings (run folders, state dir, body limit,
#: threads; no secret: each worker reads the token as the parent did) to the worker processes.
WORKER_SETTINGS = "GRAPHONC_SERVE_WORKER"


def _request_threads(threads: int | None) -> int:
    """Threads for start-up work (FAISS, BLAS); torch runs each request on one thread (see :func:`serve`)."""
    import torch

    from graphonc.threads import set_threads

    n = set_threads(threads)
    torch.set_num_threads(1)
    return n


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process: uvicorn's factory, settings from :data:`WORKER_SETTINGS`."""
    settings = json.loads(os.environ[WORKER_SETTINGS])
    _request_threads(settings["threads"])
    state_dir = Path(settings["state_dir"])
    return create_app([Path(r) for r in settings["runs"]], token=resolve_token(state_dir), state_dir=state_dir,
                      max_body=settings["max_body"])


def serve(runs: list[Path], host: str = "127.0.0.1", port: int = 8000, state_dir: Path | None = None,
          max_body: int = MAX_BODY_BYTES, threads: int | None = None, workers: int = 1) -> None:
    """Load the runs, print where to log in (and a newly generated token, once), run uvicorn.

    ``threads`` (default: the CPUs the process may use, :func:`graphonc.threads.set_threads`)
    are FAISS's and BLAS's threads; torch runs each request on one thread, since a request is
    a few small tensor operations whose OpenMP hand-offs cost more than they save (measured:
    166 ms vs 16 ms for a new patient's embedding on a busy 2-core machine), while uvicorn's
    thread pool runs requests side by side.

    ``workers`` > 1 runs that many server processes on the one port (uvicorn's supervisor), each
    with its own copy of the runs in memory: a request's Python work holds its process's GIL, so
    one process answers on about one core however many threads it has. The token is resolved
    (generated and printed once) here, before the workers start; they read the same file or
    variable. The audit log takes whole-line appends from every process.
    """
    import uvicorn

    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    token = resolve_token(state_dir)
    if workers > 1:
        os.environ[WORKER_SETTINGS] = json.dumps({"runs": [str(Path(r).resolve()) for r in runs],
                                                  "state_dir": str(state_dir.resolve()), "max_body": max_body,
                                                  "threads": threads})
        target, kwargs = "graphonc.serve.app:worker_app", {"factory": True, "workers": workers}
    else:
        n = _request_threads(threads)
        target, kwargs = create_app(runs, token=token, state_dir=state_dir, max_body=max_body), {}
    print(f"graphonc serve: http://{host}:{port}/  ({f'{workers} processes' if workers > 1 else f'{n} CPU threads'}; "
          f"audit log {state_dir / 'audit.jsonl'})", flush=True)
    if token.generated:
        print(f"Generated API token (stored in {token.source}, mode 0600, shown once): {token.value}", flush=True)
    else:
        print(f"API token from {token.source} (token id {token.id})", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address and has the token can read patient data; "
                    "put TLS in front of it", host)
    uvicorn.run(target, host=host, port=port, access_log=False, log_level="warning", server_header=False, **kwargs)
