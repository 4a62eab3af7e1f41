"""The README's test commands do what it says: `make test` is the main suite, nothing more."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> str:
    """Return the commands `make -n TARGET` would run (setup already done or not)."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: run `make setup`")
    out = subprocess.run(["make", "-n", "-s", target], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return out.stdout


def test_make_test_runs_only_the_main_suite_in_dot_venv():
    commands = dry_run("test")
    assert ".venv/bin/python -m pytest" in commands
    assert "setup_coqui" not in commands and ".venv-coqui" not in commands


def test_make_test_coqui_is_its_own_target_and_ci_runs_both():
    commands = dry_run("test-coqui")
    assert "scripts/setup_coqui.sh" in commands
    assert ".venv-coqui/bin/python -m pytest" in commands and "-m coqui" in commands
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    steps = [line for line in ci if line.startswith("make ")]
    assert steps == ["make setup", "make test", "make test-coqui"]


def test_readme_documents_both_test_targets():
    readme = (ROOT / "README.md").read_text()
    two_commands = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    make_test = [line for line in two_commands.splitlines() if line.startswith("make test ")]
    assert len(make_test) == 1 and "coqui" not in make_test[0]
    coqui = two_commands.split("`make test-coqui`", 1)[1]  # documented in the same section
    assert ".venv-coqui" in coqui and "8 GB" in coqui and "make test-coqui" in (ROOT / ".ci/run").read_text()
