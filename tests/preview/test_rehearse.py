"""``rehearse``: every shipped example rolls out on the emulator in under a minute of wall time,
with its long bakes in virtual time; a failing canary and a timeout are findings."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.core.preview.rehearse import Options, Rehearsal, rehearse
from immutable_sdk.core.preview.traffic import Load
from immutable_sdk.core.preview.warmup import WarmUp
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing import AMI_V1, sample_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.yaml"))
# the waits each example's rollout must have sat through, in virtual seconds
LEAST = {
    "blue-green.yaml": 0,
    "canary.yaml": 5 * 60 + 5 * 60 + 10 * 60 + 3600,  # bakes, analysis window, keep_previous
    "linear.yaml": 4 * 120,
    "multi-region.yaml": 30 * 60,  # the one-box wave's bake
    "rolling.yaml": 0,
}


def run(path: Path, options: Options | None = None, env: dict[str, str] | None = None) -> Rehearsal:
    options = options or Options()
    warm = WarmUp(options.boot, options.warmup)
    plugins = load_plugins([warm], autoload=True)  # the linear strategy is a plugin
    spec = load_spec([path], plugins=plugins, environ=env)
    return rehearse(spec, plugins, warm, options)


def test_every_example_is_named_here() -> None:
    assert sorted(p.name for p in EXAMPLES) == sorted(LEAST)


@pytest.mark.slow
@pytest.mark.packer
@pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary")
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_rehearses_in_under_a_minute(example: Path) -> None:
    start = time.monotonic()
    rehearsal = run(example, Options(boot=45, warmup=15))
    wall = time.monotonic() - start
    try:
        assert rehearsal.findings == [], [str(f) for f in rehearsal.findings]
        assert rehearsal.units and all(u.outcome == "promoted" for u in rehearsal.units)
        assert wall < 60, f"{example.name}: {wall:.1f}s of wall time"
        assert rehearsal.duration >= LEAST[example.name]
        # every launch waited out the simulated boot and warm-up in its gate
        state = rehearsal.state()
        for unit in rehearsal.units:
            journal = state.journal(unit.rollout or "")
            gates = [e for e in journal if e.status == "started" and e.data.get("kind") == "gate"]
            ends = {e.step_index: e.at for e in journal if e.status == "finished"}
            assert gates and all(ends[g.step_index] - g.at >= 60 for g in gates)
        state.close()
    finally:
        rehearsal.close()


CANARY = (
    "{type: canary, steps: [{weight: 20, bake: 2m}, {analysis: {type: cloudwatch-metrics, "
    "window: 5m, interval: 1m, min_samples: 100, inconclusive: fail, metrics: "
    "[{name: errors, preset: 5xx-rate, max: 0.02, max_ratio: 2}, "
    "{name: latency, preset: p99-latency, max_ratio: 1.5}]}}, {weight: 100}], keep_previous: 10m}"
)


def canary_spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(sample_spec(strategy=CANARY, traffic=True, desired=2))
    return path


def test_a_canary_that_errors_is_rolled_back_with_the_numbers(tmp_path: Path) -> None:
    options = Options(boot=20, warmup=10, load=Load(requests_per_second=10, canary_error_rate=0.1))
    rehearsal = run(canary_spec(tmp_path), options, {"IMAGE_ID": AMI_V1})
    try:
        (unit,) = rehearsal.units
        assert unit.outcome == "rolled_back"
        assert "analysis failed: errors: canary 0.1 > max 0.02" in (unit.error or "")
        assert [f.what for f in rehearsal.findings] == ["run"]
        from immutable_sdk.report import load_report

        state = rehearsal.state()
        report = load_report(state, "web", unit.rollout)
        state.close()
        (analysis,) = report.analyses
        errors, latency = analysis.metrics
        assert analysis.verdict == "fail" and errors.verdict == "fail"
        assert errors.points[-1].canary == pytest.approx(0.1)
        assert errors.points[-1].canary_samples == pytest.approx(10 * 0.2 * 300, rel=0.25)
        assert latency.verdict == "pass" and latency.points[-1].canary == pytest.approx(0.1)
        assert any(s.rollback for s in report.steps)
        assert report.weights[-1].weights == {"blue": 100, "green": 0}
    finally:
        rehearsal.close()


def test_the_cli_prints_the_timeline_writes_the_report_and_exits_1_on_findings(
    tmp_path: Path,
) -> None:
    spec = canary_spec(tmp_path)
    env = {"IMAGE_ID": AMI_V1}
    runner = CliRunner()
    out = tmp_path / "rehearsal.md"
    ok = runner.invoke(
        main,
        ["rehearse", "-f", str(spec), "--boot", "20s", "--warmup", "10s", "--report", str(out)],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    assert "web: promoted in" in ok.stdout and "findings: none" in ok.stdout
    assert "gate on health checks in slot green" in ok.stdout
    assert "rehearsal-warmup healthy" in ok.stdout
    assert out.read_text().startswith("## Rollout of `web`: **promoted**")
    bad = runner.invoke(
        main,
        ["rehearse", "-f", str(spec), "--canary-error-rate", "0.5", "-o", "json"],
        env=env,
    )
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.stdout)
    assert data["ok"] is False and data["units"][0]["outcome"] == "rolled_back"
    wrong = runner.invoke(main, ["rehearse", "-f", str(spec), "--error-rate", "2"], env=env)
    assert wrong.exit_code == 2 and "--error-rate: a fraction" in wrong.stderr


def test_a_rehearsal_that_does_not_end_in_time_is_a_finding(tmp_path: Path) -> None:
    rehearsal = run(canary_spec(tmp_path), Options(timeout=0.5), {"IMAGE_ID": AMI_V1})
    try:
        assert [f.what for f in rehearsal.findings] == ["run"]
        assert "did not end within 0.5s of wall time" in rehearsal.findings[0].message
    finally:
        rehearsal.close()
