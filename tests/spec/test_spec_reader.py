"""Reading spec files: safe YAML, positions, strict keys, ${VAR}, limits against hostile input."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.spec.reader import MAX_ALIAS_NODES, MAX_FILE_BYTES, read_spec_file

from .conftest import LOCATED, position


def read(path: Path, text: str | bytes, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return read_spec_file(str(path), environ or {})


def one_problem(path: Path, text: str | bytes) -> str:
    doc, problems = read(path, text)
    assert doc is None
    assert len(problems) == 1, problems
    line = str(problems[0])
    assert LOCATED.match(line), line
    assert line.startswith(f"{path}:")
    return line


def test_positions_of_keys_and_values(tmp_path: Path) -> None:
    doc, problems = read(tmp_path / "s.yaml", "a: 1\nb:\n  c: [x, y]\n")
    assert problems == []
    assert doc == {"a": 1, "b": {"c": ["x", "y"]}}
    f = str(tmp_path / "s.yaml")
    assert doc.key_pos["b"] == (f, 2, 1)
    assert doc["b"].value_pos["c"] == (f, 3, 6)
    assert doc["b"]["c"].item_pos[1] == (f, 3, 10)


def test_syntax_error_is_located(tmp_path: Path) -> None:
    line = one_problem(tmp_path / "s.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    assert "invalid YAML" in line
    assert position(line)[0] in (2, 3)


def test_tab_indentation_is_located_and_explained(tmp_path: Path) -> None:
    line = one_problem(tmp_path / "s.yaml", "fleets:\n\tweb: {}\n")
    assert position(line) == (2, 1)
    assert "tabs" in line


def test_duplicate_keys_are_errors_with_both_positions(tmp_path: Path) -> None:
    _doc, problems = read(tmp_path / "s.yaml", "fleets:\n  web:\n    image: a\n    image: b\n")
    assert [str(p) for p in problems] == [
        f"{tmp_path / 's.yaml'}:4:5: fleets.web.image: duplicate key 'image' "
        "(first at line 3, column 5)"
    ]


def test_a_list_at_the_top_is_refused(tmp_path: Path) -> None:
    line = one_problem(tmp_path / "s.yaml", "- a\n- b\n")
    assert line.endswith("expected a mapping at the top of the file, got a list")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    line = one_problem(tmp_path / "s.yaml", text)
    assert position(line) == (1, 1)
    assert "empty" in line


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    line = one_problem(tmp_path / "s.yaml", b"name: x\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage")
    assert position(line) == (2, 1)
    assert "not a text file" in line


def test_nul_and_control_characters_are_refused(tmp_path: Path) -> None:
    assert "NUL" in one_problem(tmp_path / "a.yaml", "a: b\x00c\n")
    assert "invalid YAML" in one_problem(tmp_path / "b.yaml", "a: b\x07c\n")


def test_a_file_over_the_limit_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        line = "key_%08d: some value that fills the line\n"
        for i in range(20 * 2**20 // len(line % 0)):
            fh.write(line % i)
    assert big.stat().st_size > 3 * MAX_FILE_BYTES
    start = time.perf_counter()
    doc, problems = read_spec_file(str(big), {})
    assert time.perf_counter() - start < 0.5
    assert doc is None
    assert str(problems[0]) == f"{big}:1:1: the file is 20.0 MiB; spec files may be at most 5 MiB"


BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_an_alias_bomb_fails_fast_with_bounded_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        line = one_problem(tmp_path / "s.yaml", BILLION_LAUGHS)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"aliases expand to more than {MAX_ALIAS_NODES} nodes" in line
    assert elapsed < 5  # about 0.2 s; tracemalloc slows it down
    assert peak < 64 * 2**20


def test_moderate_aliases_and_merge_keys_work(tmp_path: Path) -> None:
    doc, problems = read(
        tmp_path / "s.yaml",
        "base: &base {image: web, tags: {team: a}}\nweb:\n  <<: *base\n  image: api\n",
    )
    assert problems == []
    assert doc["web"] == {"image": "api", "tags": {"team": "a"}}
    assert doc["web"].key_pos["tags"][1] == 1  # written in the anchor, on line 1


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    assert "refers to itself" in one_problem(tmp_path / "s.yaml", "a: &a [1, *a]\n")


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x, y}\n",
        "a: !custom 1\n",
    ],
)
def test_only_plain_data(tmp_path: Path, text: str) -> None:
    line = one_problem(tmp_path / "s.yaml", text)
    assert position(line) == (1, 4)


def test_yaml_11_surprises_stay_strings(tmp_path: Path) -> None:
    doc, _ = read(
        tmp_path / "s.yaml",
        "a: yes\nb: off\nc: 2024-01-01\nd: 1:30\ne: 0123456789012\nf: true\ng: 12\nh: 1.5\ni: ~\n",
    )
    assert doc == {
        "a": "yes",
        "b": "off",
        "c": "2024-01-01",
        "d": "1:30",
        "e": "0123456789012",
        "f": True,
        "g": 12,
        "h": 1.5,
        "i": None,
    }


def test_keys_must_be_strings(tmp_path: Path) -> None:
    _doc, problems = read(tmp_path / "s.yaml", "tags:\n  1: x\n")
    assert [str(p) for p in problems] == [
        f"{tmp_path / 's.yaml'}:2:3: tags: keys must be strings, got 1"
    ]


def test_several_documents_are_refused(tmp_path: Path) -> None:
    assert "invalid YAML" in one_problem(tmp_path / "s.yaml", "a: 1\n---\nb: 2\n")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    _, problems = read_spec_file(str(tmp_path / "nope.yaml"), {})
    assert str(problems[0]).startswith(f"{tmp_path / 'nope.yaml'}: cannot read the file")
    _, problems = read_spec_file(str(tmp_path), {})
    assert "cannot read the file" in str(problems[0])


def test_variables_from_the_environment(tmp_path: Path) -> None:
    doc, problems = read(
        tmp_path / "s.yaml",
        'a: ${APP}\nb: "v${APP}-${MISSING:-x}"\nc: ${COUNT:-4}\nd: "${COUNT:-4}"\n'
        "e: ${EMPTY:-fallback}\nf: $${APP}\ng: ${FLAG}\n",
        {"APP": "1.2", "EMPTY": "", "FLAG": "true"},
    )
    assert problems == []
    assert doc == {
        "a": 1.2,  # an unquoted value that is only a substitution is typed after it
        "b": "v1.2-x",
        "c": 4,
        "d": "4",
        "e": "fallback",
        "f": "${APP}",
        "g": True,
    }


def test_unset_variables_are_located_errors(tmp_path: Path) -> None:
    _doc, problems = read(tmp_path / "s.yaml", 'a:\n  b: x-${NOPE}\n  c: ["${ALSO}"]\n')
    f = tmp_path / "s.yaml"
    assert [str(p) for p in problems] == [
        f"{f}:2:6: a.b: environment variable NOPE is not set and has no default "
        "(write ${NOPE:-default} to give one)",
        f"{f}:3:7: a.c[0]: environment variable ALSO is not set and has no default "
        "(write ${ALSO:-default} to give one)",
    ]


def test_malformed_references(tmp_path: Path) -> None:
    _, problems = read(tmp_path / "s.yaml", "a: ${1X}\nb: ${OPEN\n")
    assert len(problems) == 2
    assert all("malformed variable reference" in str(p) for p in problems)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
        (None, "a character device"),
    ],
    ids=["fifo", "device"],
)
def test_a_spec_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path: Path, make: Any, kind: str
) -> None:
    """A FIFO used to hang the reader forever; a device could be read without end."""
    path = tmp_path / "spec.yaml"
    if make is None:
        path = Path("/dev/zero")
    else:
        make(path)
    start = time.perf_counter()
    doc, problems = read_spec_file(str(path), {})
    assert time.perf_counter() - start < 5
    assert doc is None
    assert [str(p) for p in problems] == [f"{path}:1:1: not a regular file: {kind}"]
