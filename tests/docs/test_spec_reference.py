"""docs/reference/spec.md is what the composed schema generates today."""

from __future__ import annotations

from pathlib import Path

from immutable_sdk.spec.reference import generate

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "spec.md"


def test_the_committed_reference_is_current() -> None:
    assert PAGE.read_text() == generate(), (
        "docs/reference/spec.md is stale: run "
        "`.venv/bin/python -m immutable_sdk.spec.reference --write` and commit the result"
    )


def test_it_covers_every_builtin_plugin_and_core_block() -> None:
    text = generate()
    for heading in ("### `fleets.NAME`", "### `rolling`", "### `http`", "### `packer`"):
        assert heading in text, heading
    assert "| `batch_size` |" in text and "| `expect_status` |" in text
