"""Pytest fixtures for immutable-sdk and its plugin authors (a pytest plugin).

Enable with ``-p immutable_sdk.testing`` or ``pytest_plugins = ["immutable_sdk.testing"]``.

* ``emulator``: one moto server on 127.0.0.1 per test session (session scope);
* ``aws``: the emulator reset to a clean account for this test, with dummy credentials in the
  environment; yields its endpoint URL;
* ``virtual_clock``: a VirtualClock;
* ``spec_writer``: writes spec files (and files they reference) under ``tmp_path``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .clock import VirtualClock
from .emulator import SANDBOX_CREDENTIALS, Emulator


@pytest.fixture(autouse=True)
def _immutable_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests hermetic: no entry-point autoload, no real AWS profile or endpoint."""
    if os.environ.get("IMMUTABLE_SDK_TEST_AUTOLOAD") != "1":
        monkeypatch.setenv("IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD", "1")
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "IMMUTABLE_SDK_SANDBOX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    emulator.reset()
    for key, value in SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(key.upper(), value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield emulator.url


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


SpecWriter = Callable[..., Path]


@pytest.fixture
def spec_writer(tmp_path: Path) -> SpecWriter:
    """``spec_writer(text, name="spec.yaml", **files)`` writes a dedented spec and extra files.

    Extra files are given as keyword arguments (``user_data="#!/bin/sh"``) or as a ``files``
    mapping of relative path to content; returns the spec's path.
    """

    def write(
        text: str, name: str = "spec.yaml", files: dict[str, str] | None = None, **extra: Any
    ) -> Path:
        for rel, content in {**(files or {}), **extra}.items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(str(content)))
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
