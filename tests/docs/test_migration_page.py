"""docs/migration.md shows the specs of specs/migration/ exactly (they are validated with the
other examples by tests/spec/test_spec_examples.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "migration.md").read_text()
BLOCK = re.compile(r"<!-- spec: (\S+) -->\n```yaml\n(.*?)```", re.DOTALL)


def test_every_spec_on_the_page_is_the_file() -> None:
    shown = BLOCK.findall(PAGE)
    assert {path for path, _ in shown} == {
        f"specs/migration/{p.name}" for p in (ROOT / "specs" / "migration").glob("*.yaml")
    }
    for path, text in shown:
        assert text == (ROOT / path).read_text(), path
    for tool in ("Terraform `instance_refresh`", "CodeDeploy blue/green", "Ansible"):
        assert f"## From {tool}" in PAGE
