"""Fixtures for the recipe tests: real espeak-ng speech written where a corpus layout needs it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def espeak() -> Callable[..., Path]:
    """Return f(text, path, voice="en-us", pitch=50) rendering `text` with espeak-ng into a WAV at `path`."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make setup` (apt-get install espeak-ng)")

    def render(text: str, path: Path, voice: str = "en-us", pitch: int = 50) -> Path:
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True)
        return path

    return render
