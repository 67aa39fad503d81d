"""PcscTransport pieces that need no pcscd: reader choice, Le rewriting, the no-pcscd error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import _with_le, select_reader

READERS = ["Virtual PCD 00 00", "Virtual PCD 00 01", "Nitrokey Nitrokey HSM (DENK01234560000) 00 00"]


def test_a_unique_substring_selects_its_reader_case_insensitively() -> None:
    assert select_reader(READERS, "nitrokey") == READERS[2]
    assert select_reader(READERS, "PCD 00 01") == READERS[1]


def test_an_exact_name_wins_over_longer_names_containing_it() -> None:
    readers = ["Virtual PCD 00 00", "Virtual PCD 00 00 (second)"]
    assert select_reader(readers, "Virtual PCD 00 00") == readers[0]


@pytest.mark.parametrize(
    ("readers", "substring", "expected"),
    [
        ([], "x", "pcscd has no reader: plug in"),
        (READERS, "gemalto", "no reader matches 'gemalto'; the readers are 'Virtual PCD 00 00', "),
        (READERS, "virtual", "'virtual' matches several readers ('Virtual PCD 00 00', 'Virtual PCD 00 01'): "
                             "pass a more specific substring"),
    ],
)
def test_reader_choice_errors_are_one_sentence_with_the_remedy(readers: list[str], substring: str,
                                                               expected: str) -> None:
    with pytest.raises(TransportError) as caught:
        select_reader(readers, substring)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("capdu", "le", "expected"),
    [
        ("00CA0100", 0x10, "00CA010010"),  # case 1 gains an Le
        ("00CA010000", 0x05, "00CA010005"),  # case 2 short
        ("00A4040002AABB", 0x20, "00A4040002AABB20"),  # case 3 gains an Le
        ("00A4040002AABB00", 0x20, "00A4040002AABB20"),  # case 4 short
        ("00B10000000000", 0x80, "00B10000000080"),  # case 2 extended
        ("00B1000000000201FF0000", 0x00, "00B1000000000201FF0100"),  # case 4 extended, 00 = 256
    ],
)
def test_wrong_length_retries_carry_the_cards_le(capdu: str, le: int, expected: str) -> None:
    assert _with_le(bytes.fromhex(capdu), le).hex().upper() == expected.upper()


def test_pcscd_not_running_gives_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    # The PC/SC client library finds pcscd through PCSCLITE_CSOCK_NAME: point it nowhere.
    script = ("from hsm_lifecycle.conformance.transport.pcsc import PcscTransport\n"
              "from hsm_lifecycle.conformance.transport.base import TransportError\n"
              "try:\n    PcscTransport('Virtual PCD').connect()\n"
              "except TransportError as exc:\n    print(exc)\n")
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    assert lines[0].startswith("pcscd is not running at ") and "start it" in lines[0]
