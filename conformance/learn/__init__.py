"""Learning the device's state machine (AALpy) and diffing it against the model (issue 9).

    alphabet.py        learning alphabets and the bounds that keep the machine finite
    sul.py             the device as an AALpy SUL (lazy prefix-tree cache, cost counters)
    emulator_target.py a fresh in-memory token per query
    token_target.py    a real token, under consent and watchdogs
    learner.py         L#/KV with model proposals, random walk, then Wp
    projection.py      the model as a Mealy machine over the same alphabet and bounds
    diff.py            product BFS: equivalent, or the shortest distinguishing sequence
    campaign.py        one run end to end, with the replay of the sequence as a trace
    render.py, report.py  diagrams and the files for the evidence bundle
    visibility.py      which emulator faults each alphabet can expose, and why not the rest

docs/learning.md explains the method and gives the numbers.
"""
