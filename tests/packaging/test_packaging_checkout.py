"""`pytest --hsm-suite` from a folder of one's own, with this checkout installed editable (as
install.sh does): the suite in the checkout is collected from outside its rootdir."""

from __future__ import annotations

import subprocess
import sys


def test_hsm_suite_from_another_folder_with_the_checkout_installed(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--hsm-suite", "-k", "r19", "--hsm-evidence", "evidence", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "evidence" / "summary.json").is_file()
