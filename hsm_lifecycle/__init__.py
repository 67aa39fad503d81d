"""hsm-lifecycle: lifecycle model, emulator and conformance suite for the SmartCard-HSM.

This small root package holds what every layer may share: the tool version and the plain
protocol constants (`hsm_lifecycle.protocol`). The layers themselves live beside it:
`model/` (what must happen), `conformance/` (asks the model, drives a transport),
`emulator/` (an independent device implementation).
"""

__version__ = "0.1.0"
