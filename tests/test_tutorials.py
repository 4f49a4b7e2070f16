"""Every tutorial runs end to end in its fast mode and writes its figures.

Each tutorial asserts its own headline numbers (with looser bounds in fast mode), so a failing
assertion or an exception inside it fails this test. The tutorials run in a subprocess, as a user
would run them, with the figures redirected to a temporary folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))


def test_tutorials_are_found():
    assert len(TUTORIALS) >= 1


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_in_fast_mode(tutorial, tmp_path):
    env = dict(os.environ, NEURODYN_TUTORIAL_FAST="1", NEURODYN_TUTORIAL_OUTPUT=str(tmp_path), MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    completed = subprocess.run([sys.executable, str(tutorial)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"{tutorial.name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    figures = list((tmp_path / tutorial.stem).glob("*.png"))
    assert figures, f"{tutorial.name} wrote no figures"
