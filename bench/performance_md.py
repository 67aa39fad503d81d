"""docs/performance.md from the benchmarks' figures (bench/__main__.py collects them).

One section per known benchmark; a missing figure shows as "n/a" (a benchmark that was skipped,
failed, or changed its keys), never as an invented number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.machine import Machine

NA = "n/a"


@dataclass(frozen=True)
class Measured:
    name: str
    figures: dict | None
    seconds: float
    error: str | None


def num(value: Any, digits: int = 0, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return NA
    text = f"{value:,.{digits}f}".replace(",", " ")
    return f"{text} {unit}".rstrip() if unit else text


def get(figures: dict | None, *path: str) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _runs(figures: dict | None, key: str = "repeat") -> str:
    if figures is None:
        return "not run"
    n = get(figures, key)
    if isinstance(n, (int, float)) and n > 1:
        return f"median of {int(n)} runs"
    return "one run"


# -- sections ----------------------------------------------------------------------------------


def throughput(emu: dict | None, pcsc: dict | None) -> str:
    rows = [
        ["in-process: VERIFY status query, token in memory", num(get(emu, "verify_query_memory_apdus_per_s")), _runs(emu)],
        ["in-process: wrong VERIFY, state file written and fsynced", num(get(emu, "verify_wrong_file_apdus_per_s")), _runs(emu)],
        ["in-process: ECDSA P-256 SIGN, in memory", num(get(emu, "sign_ecdsa_p256_memory_apdus_per_s")), _runs(emu)],
        ["in-process: VERIFY status query (same run as the pcscd rows)", num(get(pcsc, "inprocess_apdus_per_s")), _runs(pcsc)],
        ["pcscd + vpcd: VERIFY status query, PcscTransport (the suite's path)", num(get(pcsc, "pcsc_transport_apdus_per_s")), _runs(pcsc)],
        ["pcscd + vpcd: VERIFY status query, bare SCardTransmit", num(get(pcsc, "pcsc_scard_apdus_per_s")), _runs(pcsc)],
    ]
    ratio = get(pcsc, "pcsc_over_inprocess")
    text = ["## APDU throughput", "", table(["path", "APDU/s", "figure"], rows), ""]
    if isinstance(ratio, (int, float)) and ratio:
        text.append(
            f"Through pcscd + vpcd an APDU takes {num(get(pcsc, 'pcsc_transport_us_per_apdu'))} µs: the pcscd path runs at "
            f"{num(ratio, 4)} of the in-process rate (in-process is {num(1 / ratio)}× faster). Each APDU crosses the "
            "client → pcscd Unix socket → vpcd driver → TCP → emulator process and back."
        )
    elif get(pcsc, "skipped"):
        text.append(str(get(pcsc, "skipped")))
    return "\n".join(text)


def campaigns(camp: dict | None) -> str:
    emu, real = get(camp, "emulator"), get(camp, "real_token_default")
    rows = [
        [
            "emulator, in-process: transition tour + stateful test",
            num(get(emu, "wall_s"), 1, "s"),
            num(get(emu, "apdus")),
            f"tour {num(get(emu, 'tour_transitions'))} transitions in {num(get(emu, 'tour_apdus'))} APDUs; "
            f"{num(get(emu, 'stateful_examples'))} hypothesis examples in {num(get(emu, 'stateful_apdus'))} APDUs",
        ],
        [
            "default real-token campaign (the emulator posing as a used token, no --hsm-serial)",
            num(get(real, "wall_s"), 1, "s"),
            num(get(real, "apdus")),
            "tests: " + ", ".join(f"{num(v)} {k}" for k, v in sorted((get(real, "tests") or {}).items())),
        ],
    ]
    tries = [
        ["emulator campaign", num(get(emu, "user_tries_spent")), num(get(emu, "so_tries_spent")), "fresh tokens: every try may be spent"],
        [
            "default real-token campaign",
            NA,
            num(get(real, "so_tries_spent_and_restored")),
            f"tries not given back: {num(get(real, 'irreversible_tries_spent'))}; SO counter {num(get(real, 'so_tries_start'))} "
            f"at the start, {num(get(real, 'so_tries_end'))} at the end; owner's keys kept: {get(real, 'owner_keys_kept')}",
        ],
    ]
    return "\n".join(
        [
            "## Conformance campaign",
            "",
            f"`bench/bench_campaign.py`, {_runs(camp, 'runs')} (`python -m bench --quick`: 50 hypothesis examples instead of 200).",
            "",
            table(["campaign", "wall time", "APDUs", "what"], rows),
            "",
            "### Tries spent per campaign",
            "",
            table(["campaign", "user-PIN tries spent", "SO-PIN tries spent", "notes"], tries),
        ]
    )


def fleet(fl: dict | None) -> str:
    head = [
        "## Many tokens: one per xdist worker over pcscd + vpcd",
        "",
        "`bench/bench_fleet.py`: `pytest -n N --hsm-target emulator:vpcd` (conformance/fleet.py), every token running "
        "the same campaign on its own emulator process and vpcd reader; each run a fresh `python -m pytest` process.",
        "",
    ]
    if fl is None or get(fl, "skipped"):
        return "\n".join(head + [str(get(fl, "skipped") or "not measured")])
    plain = get(fl, "plain")
    rows = [["1, without xdist", num(get(plain, "wall_s"), 1, "s"), num(get(plain, "tokens_per_minute"), 1), "", num(get(plain, "apdus_per_token")),
             f"{num(get(plain, 'user_tries_per_token'))} / {num(get(plain, 'so_tries_per_token'))}", str(get(plain, "all_passed"))]]
    for row in get(fl, "fleet") or []:
        speed = get(row, "speedup_vs_one")
        rows.append([
            f"{row['tokens']} (`-n {row['tokens']}`)",
            num(get(row, "wall_s"), 1, "s"),
            num(get(row, "tokens_per_minute"), 1),
            f"{num(speed, 2)}×" if isinstance(speed, (int, float)) else NA,
            num(get(row, "apdus_per_token")),
            f"{num(get(row, 'user_tries_per_token'))} / {num(get(row, 'so_tries_per_token'))}",
            str(get(row, "all_passed")),
        ])
    notes = [
        "",
        f"Campaign: {get(fl, 'selection')}; wall time is the {_runs(fl)} (runs interleaved across token counts), on "
        f"{get(fl, 'cpus')} CPUs. Speed-up = tokens per minute relative to `-n 1`. The vpcd campaign is latency-bound "
        "(pcscd round trips, its ~0.4 s card polls after an emulator is renewed), so tokens overlap their waits even "
        "when there are more workers than cores.",
    ]
    failures = [f"`-n {r['tokens']}`: {r['failure']}" for r in get(fl, "fleet") or [] if get(r, "failure")]
    if get(plain, "failure"):
        failures.insert(0, f"without xdist: {get(plain, 'failure')}")
    if failures:
        notes += ["", "Runs in which a token still did not pass (their wall time counts): " + "; ".join(failures)]
    discarded = [str(d) for d in get(fl, "discarded") or []]
    if discarded:
        reasons = "; ".join(f"{reason} (×{discarded.count(reason)})" for reason in dict.fromkeys(discarded))
        notes += ["", f"{len(discarded)} run(s) discarded and run again because a token did not pass: {reasons}"]
    table_ = table(["tokens", "wall time", "tokens/min", "speed-up", "APDUs per token", "user / SO tries per token", "all passed"], rows)
    return "\n".join(head + [table_] + notes)


def learning(learn: dict | None) -> str:
    rows = []
    for name, label in (("core", "core (default)"), ("core_black_box", "core, black box (no model guidance)"), ("so", "so"), ("options", "options"), ("full", "full")):
        r = get(learn, name)
        if isinstance(r, dict):
            rows.append([label, num(r.get("inputs")), num(r.get("states")), num(r.get("queries")), num(r.get("steps")),
                         num(r.get("apdus")), num(r.get("seconds"), 2, "s"), _runs(r, "runs")])
    return "\n".join([
        "## Learning cost",
        "",
        "`bench/bench_learn.py`: complete learns of the conforming emulator, in memory (queries = device resets).",
        "",
        table(["alphabet", "inputs", "states learned", "queries", "steps", "APDUs", "time", "figure"], rows) if rows else NA,
    ])


def model(m: dict | None) -> str:
    rows = [
        ["model transitions", num(get(m, "transitions"))],
        ["oracle calls per second", num(get(m, "oracle_calls_per_s"))],
        ["explored extended states (keys ≤ 3, firmware updates ≤ 5)", num(get(m, "explored_states"))],
        ["  steps evaluated / transitions taken", f"{num(get(m, 'explored_steps'))} / {num(get(m, 'explored_transitions'))}"],
        ["  exploration time", num(get(m, "exploration_s"), 2, "s")],
        ["explored states, every user-PIN maximum 1..10", num(get(m, "explored_states_retries_1_to_10"))],
        ["  exploration time", num(get(m, "exploration_retries_1_to_10_s"), 2, "s")],
    ]
    return "\n".join(["## Model exploration", "", f"`bench/bench_model.py` (machine build and oracle rate: {_runs(m)}; each exploration once, its size is exact).", "", table(["figure", "value"], rows)])


def fuzzing(fz: dict | None) -> str:
    rows = [
        ["inputs per second", num(get(fz, "inputs_per_second"))],
        ["inputs run (all runs)", num(get(fz, "inputs_total"))],
        ["sequences per run", num(get(fz, "sequences"))],
        ["power cuts per run", num(get(fz, "power_cuts"))],
        ["distinct status words", num(get(fz, "distinct_status_words"))],
        ["findings (all runs)", num(get(fz, "findings"))],
    ]
    return "\n".join([
        "## APDU fuzzing (short)",
        "",
        f"`bench/fuzz_apdu.py`, {num(get(fz, 'seconds'))} s per run, seeds {get(fz, 'seeds')} (median per run). "
        "The long run is `python -m bench.fuzz_apdu --seconds 300`.",
        "",
        table(["figure", "value"], rows),
    ])


def others(measured: Sequence[Measured], known: set[str]) -> str:
    parts = []
    for m in measured:
        if m.name in known or m.figures is None:
            continue
        rows = [[str(k), num(v, 3) if isinstance(v, float) else str(v)] for k, v in m.figures.items() if not isinstance(v, (dict, list))]
        parts += [f"## {m.name}", "", table(["figure", "value"], rows), ""]
    return "\n".join(parts)


SECTIONS: tuple[tuple[tuple[str, ...], Callable[..., str]], ...] = (
    (("bench_emulator", "bench_pcsc"), throughput),
    (("bench_campaign",), campaigns),
    (("bench_fleet",), fleet),
    (("bench_learn",), learning),
    (("bench_model",), model),
    (("fuzz_apdu",), fuzzing),
)


def render(measured: Sequence[Measured], machine: Machine, *, command: str, quick: bool, total_s: float) -> str:
    by_name = {m.name: m for m in measured}
    lines = [
        "# Performance",
        "",
        f"<!-- GENERATED by `{command}` (bench/__main__.py). Do not edit by hand: run the command again. -->",
        "",
        f"Generated by `{command}` on {machine.when}; all benchmarks took {total_s / 60:.1f} min. "
        + ("This is the quick variant: fewer runs, shorter campaigns. " if quick else "")
        + "Figures are medians (or ratios of medians) of several runs unless a row says otherwise.",
        "",
        "## Machine",
        "",
        table(
            ["", ""],
            [
                ["CPU", machine.cpu],
                ["cores", f"{machine.cores} ({machine.usable_cores} usable by this process)"],
                ["Python", machine.python],
                ["OS", machine.os],
                ["commit", machine.commit],
                ["load average (1 min) at the start", f"{machine.load_start:.2f} (a shared machine: other jobs skew the figures)"],
            ],
        ),
        "",
    ]
    failed = [m for m in measured if m.error]
    if failed:
        lines += ["**Benchmarks that failed:** " + "; ".join(f"`{m.name}`: {m.error}" for m in failed), ""]
    for names, section in SECTIONS:
        if any(n in by_name for n in names):
            lines += [section(*(by_name[n].figures if n in by_name else None for n in names)), ""]
    extra = others(measured, {n for names, _ in SECTIONS for n in names})
    if extra:
        lines.append(extra)
    lines += [
        "## Time per benchmark",
        "",
        table(["benchmark", "seconds"], [[f"`bench/{m.name}.py`", num(m.seconds, 1)] for m in measured]),
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"
