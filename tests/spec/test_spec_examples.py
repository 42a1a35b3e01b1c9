"""Every example under specs/ loads and validates with the built-in plugins.

A file whose first lines contain ``# overlay-of: OTHER.yaml`` is validated on top of that file
(``-f OTHER.yaml -f this.yaml``); one with ``# plugin: DISTRIBUTION`` needs that plugin
distribution (from ``plugins/``, installed by scripts/bootstrap) and loads entry points.
Packer templates and files under ``packer/`` are not specs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(
    p
    for p in (ROOT / "specs").rglob("*")
    if p.suffix in (".yaml", ".yml") and "packer" not in p.relative_to(ROOT / "specs").parts
)
OVERLAY = re.compile(r"^#\s*overlay-of:\s*(\S+)", re.MULTILINE)
PLUGIN = re.compile(r"^#\s*plugin:\s*(\S+)", re.MULTILINE)


def test_there_are_examples() -> None:
    assert SPECS


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_example_spec_is_valid(path: Path) -> None:
    head = "".join(path.read_text().splitlines(keepends=True)[:5])
    base = OVERLAY.search(head)
    files = [path.parent / base.group(1), path] if base else [path]
    needs = PLUGIN.search(head)
    plugins = load_plugins(autoload=needs is not None)
    if needs:
        dists = {d.split(" ")[0] for d in plugins.distributions.values()}
        assert needs.group(1) in dists, f"install {needs.group(1)} (scripts/bootstrap does)"
    spec = load_spec(files, plugins=plugins, environ={})
    assert spec.fleets or spec.images


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_example_passes_validate_strict(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real command, as CI would run it: no problem and no warning."""
    from click.testing import CliRunner

    from immutable_sdk.cli import main
    from immutable_sdk.plugins import AUTOLOAD_ENV

    head = "".join(path.read_text().splitlines(keepends=True)[:5])
    base = OVERLAY.search(head)
    files = [path.parent / base.group(1), path] if base else [path]
    if PLUGIN.search(head):
        monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    for name in ("APP_VERSION", "WEB_AMI"):
        monkeypatch.delenv(name, raising=False)
    args = [a for f in files for a in ("-f", str(f))]
    result = CliRunner().invoke(main, ["validate", "--strict", *args])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("ok: ")
