"""APDU fuzzing of the emulator, shared by the robustness tests and the long runs in bench/.

    grammar     the structure-aware APDU grammar and the `Chooser` every driver offers it
    starts      start states reached through the model; `Campaign` (emulator + model profile)
    invariants  what every answer must keep (docs/robustness.md)
    fuzzed      `FuzzedToken`: one token at a start, taking actions and collecting findings
"""
