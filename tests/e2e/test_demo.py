"""The README's demo command, run as a user would: it must end with an identical server copy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_script_runs_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SFTPMIRROR_PASSWORD"}
    proc = subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "copy     index.html  (new file)" in out
    assert "nothing to do" in out
    assert "no problems found" in out
    assert "exit code 4" in out
    assert out.rstrip().endswith("identical")
