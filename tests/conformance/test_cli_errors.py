"""The command line's usage errors stay one sentence however it is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_module_run_prints_one_sentence_for_a_usage_error(tmp_path: Path) -> None:
    # `python -m hsm_lifecycle.conformance.cli` runs cli.py as __main__: the error class the command raises
    # must still be the one main() catches.
    done = subprocess.run(
        [sys.executable, "-m", "hsm_lifecycle.conformance.cli", "diagram", "--out", str(tmp_path / "x.bogus")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["hsm-lifecycle diagram: cannot draw 'x.bogus': use a file name ending in .svg, .png or .dot."]
    assert not (tmp_path / "x.bogus").exists()


def test_usage_error_is_reexported_from_cli() -> None:
    from hsm_lifecycle.conformance import cli, errors

    assert cli.UsageError is errors.UsageError
