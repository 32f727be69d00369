"""Generated secrets kept in a file only its owner can read (mode 0600).

Used for the local Neo4j server's password (:mod:`graphonc.store.neo4j_server`) and the
service's API token (:mod:`graphonc.serve.security`): one way to make and keep a secret.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def generate_secret_file(path: Path, nbytes: int = 18) -> str:
    """A new random URL-safe secret (``nbytes`` random bytes) written to ``path`` with mode 0600."""
    secret = secrets.token_urlsafe(nbytes)  # URL-safe characters: no quoting trouble anywhere
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file
    return secret


def read_secret_file(path: Path) -> str:
    """The secret kept in ``path`` (surrounding whitespace removed)."""
    return Path(path).read_text(encoding="utf-8").strip()
