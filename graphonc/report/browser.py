"""Rendering a report in headless Chromium: a screenshot and the page's console messages.

Used by the tests (and handy to check a report on a server without a display). Needs a
Chromium binary (Debian: ``apt-get install chromium``; ``scripts/setup.sh`` installs it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from graphonc.errors import GraphoncError

_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\]\s*(.*)$")


@dataclass
class Rendered:
    png: Path
    console: list[str]     # every console message the page produced (our pages have no scripts: none)
    returncode: int


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise GraphoncError("no Chromium found. Fix: `apt-get install chromium` "
                        "(scripts/setup.sh --neo4j installs it when run as root).")


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 4000, timeout: float = 180) -> Rendered:
    """Load ``page`` (a local HTML file) in headless Chromium, write a ``width`` × ``height`` px PNG."""
    page, png = Path(page).resolve(), Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="graphonc-chromium-") as profile:
        cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    console = [m.group(1) for line in proc.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return Rendered(png, console, proc.returncode)
