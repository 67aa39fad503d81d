"""conformance package: the pytest plugin, the suite, targets, evidence and the command line."""

from pathlib import Path

# The conformance tests as installed: `hsm-lifecycle run` and `pytest --hsm-suite` collect them.
SUITE_DIR = Path(__file__).parent / "suite"
