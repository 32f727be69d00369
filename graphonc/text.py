"""Reading text files strictly as UTF-8, the one encoding graphonc accepts.

A byte that is not UTF-8 is refused with its line, its column (1-based byte within the line)
and its byte offset in the file, instead of a traceback or a silent U+FFFD (which would give two
patients the same id). A leading UTF-8 byte-order mark (Excel's "UTF-8 with BOM") is accepted
and dropped. Lines are counted like the readers count them: CR, LF and CRLF each end a line.

Light on purpose (no NumPy/pandas): the config loader uses it at CLI start-up.
"""
from __future__ import annotations

from pathlib import Path

from graphonc.errors import ConfigError, InputError

#: Bytes read per step when a whole file is checked (a 465 MiB MAF is never held in memory).
_CHUNK = 1 << 24

FIX = ("re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`, or "
       "'Save as… CSV UTF-8' in a spreadsheet).")


def _error(path: Path, line: int, column: int, offset: int, bad: bytes, what: str) -> InputError:
    if bad == b"\x00":  # valid UTF-8, but no text file has one, and the table parser cuts a cell at it
        return InputError(f"NUL byte at byte offset {offset} ({what} must be UTF-8 text; this looks binary, or "
                          "UTF-16).", file=path, line=line, column=column,
                          hint="remove the NUL bytes; for UTF-16 text, " + FIX)
    return InputError(f"byte {bad!r} at byte offset {offset} is not UTF-8 ({what} must be UTF-8 text).",
                      file=path, line=line, column=column, hint=FIX)


def _first_bad(data: bytes) -> tuple[int, bytes] | None:
    """(offset, bytes) of the first byte of ``data`` that is not UTF-8 or is NUL; None when all are fine.

    An unfinished character at the very end counts as bad (callers handle chunk ends).
    """
    nul = data.find(b"\x00")
    try:
        (data[:nul] if nul >= 0 else data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start, data[exc.start:exc.end]
    return (nul, b"\x00") if nul >= 0 else None


def decode(data: bytes, path: Path, what: str = "file") -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped); InputError naming the first bad byte."""
    bad = _first_bad(data)
    if bad is not None:
        offset, what_bytes = bad
        head = data[:offset]
        line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
        start = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
        raise _error(path, line, offset - start + 1, offset, what_bytes, what)
    return data.decode("utf-8-sig")


def read_text(path: Path, what: str = "file") -> str:
    """The whole (small) file as text: UTF-8, BOM dropped, bad bytes refused by position."""
    return decode(Path(path).read_bytes(), Path(path), what)


def read_config_text(path: Path) -> str:
    """A YAML config's text: UTF-8 (a BOM dropped), else ConfigError naming the line and column."""
    try:
        return read_text(path, "a config file")
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def check_utf8(path: Path, what: str = "file") -> None:
    """Stream ``path`` and raise InputError at its first byte that is not UTF-8, or is NUL.

    Costs one more read of the file, in chunks (never held whole); the line of a bad byte is counted by a
    second pass, only then.
    """
    base, carry = 0, b""  # file offset of ``carry``: an unfinished character at the end of the last chunk
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = carry + chunk
            bad = _first_bad(data)
            if bad is not None:
                offset, what_bytes = bad
                if chunk and offset + len(what_bytes) == len(data) and len(what_bytes) < 4 and what_bytes != b"\x00" \
                        and _unfinished(what_bytes):
                    carry, base = data[offset:], base + offset  # finish the character next chunk
                    continue
                raise _located(Path(path), base + offset, what_bytes, what)
            if not chunk:
                return
            base, carry = base + len(data), b""


def _unfinished(tail: bytes) -> bool:
    """Whether ``tail`` is the start of a multi-byte character (more bytes may follow)."""
    try:
        tail.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data"
    return False


def _located(path: Path, offset: int, bad: bytes, what: str) -> InputError:
    """The error for the bad bytes ``bad`` at ``offset``, its line and column counted by streaming."""
    line, start, pos, last = 1, 0, 0, b""  # line number, offset where it starts, bytes read, previous byte
    with open(path, "rb") as fh:
        while pos < offset:
            chunk = fh.read(min(_CHUNK, offset - pos))
            line += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if last == b"\r" and chunk[:1] == b"\n":
                line -= 1  # a CRLF split across two reads
            brk = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            if brk >= 0:
                start = pos + brk + 1
            pos += len(chunk)
            last = chunk[-1:]
    return _error(path, line, offset - start + 1, offset, bad, what)
