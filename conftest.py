"""Registers the conformance plugin for runs from the repository root.

The plugin is also registered through the `pytest11` entry point once the project is
installed; register it here only if that has not already happened.
"""

import sys

pytest_plugins = [] if "hsm_lifecycle.conformance.plugin" in sys.modules else ["hsm_lifecycle.conformance.plugin"]
