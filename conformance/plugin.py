"""pytest plugin for the hsm-lifecycle conformance suite (options, targets, interlocks)."""
