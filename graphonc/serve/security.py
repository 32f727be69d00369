"""Who may ask, what was asked, how much may be sent: the service's token, audit log and limits.

* **Token.** ``GRAPHONC_API_TOKEN`` if set; else the token kept in ``<state dir>/api_token``;
  else a new one generated there (mode 0600, :func:`graphonc.secret_file.generate_secret_file`)
  and printed once at start-up. Every request needs it, as ``Authorization: Bearer <token>``
  or as the HttpOnly, SameSite=Strict cookie the login page sets. Compared in constant time.
* **Audit log.** One JSON line per request, appended to ``<state dir>/audit.jsonl`` (0600,
  opened O_APPEND): time, token id (a hash prefix, never the token), method, the route
  template (``/api/runs/{run}/patients/{patient_id}/similar``), run, the cohort patient ids
  asked about, status. No clinical values, no query strings, no bodies.
* **Body limit.** Requests with a larger body get a 413 before the body is read.
* **Logs.** uvicorn's access log (which prints full paths, i.e. patient ids) is off; the
  service logs method, route template, status and time only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from graphonc.secret_file import generate_secret_file, read_secret_file

log = logging.getLogger("graphonc.serve")

TOKEN_ENV = "GRAPHONC_API_TOKEN"
COOKIE = "graphonc_token"
#: Shortest accepted token from the environment or a file.
MIN_TOKEN_LENGTH = 16
#: Default body limit: a MAF of a few thousand variants fits.
MAX_BODY_BYTES = 2 * 1024 * 1024


def default_state_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "graphonc" / "serve"


@dataclass
class Token:
    value: str
    source: str          # where it came from (never the token itself)
    generated: bool

    @property
    def id(self) -> str:
        return token_id(self.value)

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"Token(id={self.id!r}, source={self.source!r}, generated={self.generated})"


def token_id(value: str) -> str:
    """A pseudonymous id of a token for the audit log: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def resolve_token(state_dir: Path, env: dict | None = None) -> Token:
    """The API token (see the module doc for the order)."""
    from graphonc.errors import GraphoncError

    env = os.environ if env is None else env
    path = Path(state_dir) / "api_token"
    if env.get(TOKEN_ENV):
        value, source, generated = env[TOKEN_ENV].strip(), TOKEN_ENV, False
    elif path.is_file():
        value, source, generated = read_secret_file(path), str(path), False
    else:
        value, source, generated = generate_secret_file(path, 24), str(path), True
    if len(value) < MIN_TOKEN_LENGTH or any(c.isspace() for c in value):
        raise GraphoncError(f"the API token from {source} must be at least {MIN_TOKEN_LENGTH} characters without "
                            "spaces. Fix: set a longer one, or remove the file to have one generated.")
    return Token(value, source, generated)


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


class AuditLog:
    """Append-only JSON lines (see the module doc); safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def write(self, *, token: str | None, method: str, endpoint: str, status: int, run: str | None = None,
              patient_ids: list[str] | None = None, new_patient: bool = False) -> None:
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token_id": token_id(token) if token else None,
               "method": method, "endpoint": endpoint, "status": status}
        if run is not None:
            rec["run"] = run
        if patient_ids:
            rec["patient_ids"] = patient_ids
        if new_patient:
            rec["new_patient"] = True  # its values are never written here
        line = (json.dumps(rec, ensure_ascii=True) + "\n").encode("ascii")
        with self._lock:
            os.write(self._fd, line)  # one write() per line on an O_APPEND file: lines never interleave

    def close(self) -> None:
        os.close(self._fd)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        try:
            return await self.app(scope, limited, send)
        except _TooLarge:
            return await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
