"""Fixtures for the doctor tests (helpers in doctor_tokens.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from doctor_tokens import STATE_RECIPES, Built, build_token


@pytest.fixture
def token_in() -> Callable[[str], Built]:
    def make(state: str) -> Built:
        return build_token(**STATE_RECIPES[state])  # type: ignore[arg-type]

    return make
