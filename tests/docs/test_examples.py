"""The docs' Python examples run: every ```python block marked ``<!-- test -->``.

The marked blocks of one page run in order in one module (so a tutorial builds up step by
step), in a scratch folder holding a copy of ``specs/``, with the test's hermetic environment.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"<!-- test -->\s*\n```python\n(.*?)\n```", re.DOTALL)
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text()))


def examples(page: Path) -> list[tuple[int, str]]:
    text = page.read_text()
    return [(text[: m.start(1)].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_pages_that_teach_code_have_tested_examples() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"api.md", "plugins.md", "quickstart.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: str
) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    name = f"docs_example_{page.stem}"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    for line, code in examples(page):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), module.__dict__)
        except Exception as exc:
            raise AssertionError(
                f"the example at {page.relative_to(ROOT)}:{line} failed: {exc!r}\n"
                f"it printed:\n{out.getvalue()}"
            ) from exc
