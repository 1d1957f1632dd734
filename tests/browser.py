"""Debian's headless chromium for the listening page: the page's audio status after loading, and a screenshot."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=60000"]


def audio_status(chromium: str, page: Path, profile: Path) -> dict:
    """The page's #audio-status once loaded: loaded and failed counts, and the durations (s) of the players."""
    dom = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=300).stdout
    tag = re.search(r'<p id="audio-status"[^>]*>', dom).group(0)
    status = dict(re.findall(r'data-(\w+)="([^"]*)"', tag))
    status["durations"] = [float(d) for d in status["durations"].strip("[]").split(",") if d]
    return status


def screenshot(chromium: str, page: Path, profile: Path, out: Path) -> None:
    subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1400,900", f"--screenshot={out}",
                    page.as_uri()], capture_output=True, timeout=300, check=True)
