"""The README's two set-up commands exist, and the main job (scripts/demo) runs end to end."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^    (\S.*)$", section, flags=re.M)


def test_readme_has_exactly_the_demo_and_the_test_command() -> None:
    assert readme_commands() == ["scripts/demo", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci


@pytest.mark.slow
def test_the_main_job_runs_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMMUTABLE_SDK_"))}
    out = subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "Traceback" not in log
    # The whole flow: a Packer bake, a create, a rolling replacement in batches, a noop.
    assert "image web: built us-east-1=ami-" in log
    assert re.search(r"\[web\] create: nothing -> r-\w+", log)
    assert re.search(r"\[web\] replace: r-\w+ -> r-\w+ in \d+ steps", log)
    assert log.count("rollout promoted") == 2
    assert "no changes: every fleet runs its current release" in log
