"""The corpus of bad specs (tests/spec/corpus, see its README) through the real ``validate``.

Each case says the exit code and every located line the command must print: exactly those,
nothing else, and never a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
DIRECTIVE = re.compile(r"^# (exit|expect|warn|args|env): ?(.*)$")


def _directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"exit": [], "expect": [], "warn": [], "args": [], "env": []}
    for line in path.read_text().splitlines():
        m = DIRECTIVE.match(line)
        if m:
            found[m[1]].append(m[2])
    return found


def run_case(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str], list[str]]:
    """(exit code, error lines, warning lines) of ``validate`` on one case, run from the
    corpus folder so that the printed locations are the case's own name."""
    d = _directives(path)
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()):
        monkeypatch.delenv(name, raising=False)  # only what the case sets is set
    for pair in d["env"]:
        name, _, value = pair.partition("=")
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(CORPUS)
    args = [a for line in d["args"] for a in line.split()]
    result = CliRunner().invoke(main, ["validate", *args, "-f", path.name])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    errors, warnings = [], []
    for line in result.stderr.splitlines():
        if line.startswith("warning: "):
            warnings.append(line.removeprefix("warning: "))
        elif re.match(r"^(?:error: )?[^\s:]+\.yaml:\d+:\d+: ", line):
            errors.append(line.removeprefix("error: "))
        else:
            assert re.match(r"^error: \d+ problem\(s\) found$", line), line
    return result.exit_code, errors, warnings


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _directives(path)
    assert d["exit"], f"{path.name}: no '# exit:' line"
    code, errors, warnings = run_case(path, monkeypatch)
    prefix = f"{path.name}:"
    assert code == int(d["exit"][0]), "\n".join(errors + warnings)
    folder = str(CORPUS)  # messages may name absolute paths: written {corpus} in a case
    assert errors == [prefix + e.replace("{corpus}", folder) for e in d["expect"]]
    assert warnings == [prefix + w.replace("{corpus}", folder) for w in d["warn"]]


def regenerate() -> None:  # pragma: no cover - a helper to write a new case's expectations
    """Print each case's output in the directive format (review it before pasting)."""
    mp = pytest.MonkeyPatch()
    for path in CASES:
        code, errors, warnings = run_case(path, mp)
        print(f"== {path.name}\n# exit: {code}")
        for e in errors:
            print("# expect: " + e.removeprefix(path.name + ":").replace(str(CORPUS), "{corpus}"))
        for w in warnings:
            print("# warn: " + w.removeprefix(path.name + ":").replace(str(CORPUS), "{corpus}"))
    mp.undo()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD", "1")
    regenerate()


def test_a_symbolic_link_pointing_out_of_the_folder_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "spec"
    (folder / "files").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("not for instances\n")
    (folder / "files" / "boot.sh").symlink_to(tmp_path / "secret.txt")
    (folder / "files" / "web.pkr.hcl").write_text("# template\n")
    text = (CORPUS / "good-compound-durations.yaml").read_text()
    (folder / "spec.yaml").write_text(text.replace("files/user-data.sh", "files/boot.sh"))
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, ["validate", "-f", "spec.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: spec.yaml:12:16: fleets.web.user_data: file 'files/boot.sh' (a symbolic link "
        f"to {tmp_path / 'secret.txt'}) is outside the folder of this spec file ({folder}); keep "
        "the files a spec reads next to it (validate --strict refuses this)"
    ]
    assert "(1 warning)" in result.stdout
    strict = CliRunner().invoke(main, ["validate", "--strict", "-f", "spec.yaml"])
    assert strict.exit_code == 2
    # a link that stays inside the folder is fine
    (folder / "files" / "boot.sh").unlink()
    (folder / "files" / "boot.sh").symlink_to(folder / "files" / "web.pkr.hcl")
    assert CliRunner().invoke(main, ["validate", "--strict", "-f", "spec.yaml"]).exit_code == 0


def test_json_output_carries_the_warnings_and_strict_makes_them_problems(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    monkeypatch.chdir(CORPUS)
    name = "files-outside-warned.yaml"
    result = CliRunner().invoke(main, ["validate", "-f", name, "-o", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert [(w["line"], w["column"], w["path"]) for w in report["warnings"]] == [
        (12, 16, "fleets.web.user_data")
    ]
    result = CliRunner().invoke(main, ["validate", "--strict", "-f", name, "-o", "json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert [p["path"] for p in report["problems"]] == ["fleets.web.user_data"]
    assert "outside the folder of this spec file" in report["problems"][0]["message"]
