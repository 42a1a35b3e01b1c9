"""The generated CLI pages are current; shell completion works; the docs build fails on any
warning (mkdocs --strict counts only the warnings it prints: never run it with --quiet)."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = runpy.run_path(str(ROOT / "scripts" / "cli_docs.py"))


def test_cli_reference_and_environment_pages_are_current() -> None:
    stale = GENERATOR["stale"]()
    assert not stale, f"run .venv/bin/python scripts/cli_docs.py; stale: {stale}"


def test_every_command_and_option_is_on_the_pages() -> None:
    from immutable_sdk.cli import main

    cli = (ROOT / "docs/reference/cli.md").read_text()
    env = (ROOT / "docs/reference/environment.md").read_text()
    for path, command in GENERATOR["walk"](main):
        assert f"## `{' '.join(('immutable-sdk', *path))}`" in cli or not path
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            for var in GENERATOR["envvars"](param, path):
                assert f"`{var}`" in env
    assert "`IMMUTABLE_SDK_APPLY_PARALLELISM` | `--parallelism` | apply |" in env
    assert "`IMMUTABLE_SDK_SANDBOX` | `--sandbox` | (global) |" in env


def _complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bash_completion_script_and_completions() -> None:
    script = _complete({"_IMMUTABLE_SDK_COMPLETE": "bash_source"})
    assert script.returncode == 0, script.stderr
    assert "_immutable_sdk_completion()" in script.stdout
    assert "complete -o nosort -F _immutable_sdk_completion immutable-sdk" in script.stdout
    # what the script asks for at a TAB: the words so far, the index of the current one
    words = _complete(
        {
            "_IMMUTABLE_SDK_COMPLETE": "bash_complete",
            "COMP_WORDS": "immutable-sdk pl",
            "COMP_CWORD": "1",
        }
    )
    assert "plain,plan" in words.stdout and "plain,plugins" in words.stdout
    choices = _complete(
        {
            "_IMMUTABLE_SDK_COMPLETE": "bash_complete",
            "COMP_WORDS": "immutable-sdk status -o ",
            "COMP_CWORD": "3",
        }
    )
    assert choices.stdout.split() == ["plain,text", "plain,json"]


def test_the_docs_build_fails_on_a_warning(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed")
    runs = [
        line
        for line in (ROOT / "scripts/test").read_text().splitlines()
        if "mkdocs build" in line and not line.lstrip().startswith(("#", "echo"))
    ]
    assert runs and all("--strict" in r and "--quiet" not in r and " -q" not in r for r in runs)
    site = tmp_path / "project"
    shutil.copytree(ROOT / "docs", site / "docs")
    shutil.copy(ROOT / "mkdocs.yml", site / "mkdocs.yml")
    (site / "docs" / "orphan.md").write_text("# A page nobody put in the nav\n")
    build = [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "out")]
    broken = subprocess.run(build, cwd=site, capture_output=True, text=True, timeout=300)
    assert broken.returncode != 0, broken.stderr
    assert "orphan.md" in broken.stderr
    (site / "docs" / "orphan.md").unlink()
    ok = subprocess.run(build, cwd=site, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
