"""Fixtures of the safety machine: a bench on the session's emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from immutable_sdk.sandbox.emulator import Emulator

from .rules import Bench


@pytest.fixture
def bench(aws: str, emulator: Emulator, tmp_path: Path) -> Bench:
    return Bench(emulator, tmp_path)
