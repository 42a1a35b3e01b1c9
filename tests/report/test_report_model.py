"""The report model, HTML and Markdown, from a journal written through the state store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from immutable_sdk.errors import UsageError
from immutable_sdk.report import load_report, render, write_report
from immutable_sdk.report.model import RolloutReport

from .journal import write_canary_journal

WAVES = {"web@us-west-2": "one-box", "web": "rest", "checkout": "rest", "api@eu-west-1": "rest"}


@pytest.fixture
def report(tmp_path: Path) -> RolloutReport:
    state = write_canary_journal(tmp_path / "state.db")
    try:
        return load_report(
            state, "checkout", "ro-canary", waves=lambda keys: WAVES, home_region="us-east-1"
        )
    finally:
        state.close()


def test_steps_carry_their_results_and_the_rollback_follows(report: RolloutReport) -> None:
    rows = {s.index: s for s in report.steps}
    assert rows[1].status == "ok" and rows[1].checks == {"ec2": "healthy", "elb": "healthy"}
    assert (rows[1].start, rows[1].end) == (40.0, 95.0)
    assert rows[4].status == "failed" and "canary 0.05 > max 0.02" in rows[4].detail
    assert [rows[i].status for i in (5, 6)] == ["not run", "not run"]
    assert rows[7].rollback and rows[7].detail == "blue 100%, green 0%"
    assert rows[8].rollback and rows[8].text == "retire slot green (1 instance(s))"
    assert report.outcome == "rolled_back" and report.duration == 1200


def test_weights_and_capacity_over_time(report: RolloutReport) -> None:
    assert [(p.at, dict(p.weights)) for p in report.weights] == [
        (0.0, {"blue": 100, "green": 0}),
        (97.0, {"blue": 90, "green": 10}),
        (578.0 + 2, {"blue": 100, "green": 0}),
    ]
    assert [p.healthy for p in report.capacity] == [4, 4, 5, 5, 5, 4]
    assert report.limits == {"min": 2, "desired": 4, "max": 8}


def test_each_metric_has_its_judgements_thresholds_and_verdict(report: RolloutReport) -> None:
    (analysis,) = report.analyses
    assert analysis.step == 4 and analysis.verdict == "fail"
    errors, latency = analysis.metrics
    assert [p.canary for p in errors.points] == [0.012, 0.03, 0.05]
    assert (errors.max, errors.max_ratio, errors.min_samples) == (0.02, 2.0, 100)
    assert errors.verdict == "fail" and "canary 0.05 > max 0.02" in errors.reason
    assert latency.verdict == "pass" and latency.max is None and latency.max_ratio == 1.5


def test_the_apply_units_by_wave_and_region(report: RolloutReport) -> None:
    units = {u.key: u for u in report.units}
    assert set(units) == {"checkout", "web", "web@us-west-2", "api@eu-west-1"}
    assert units["web@us-west-2"].wave == "one-box" and units["web@us-west-2"].region == "us-west-2"
    assert units["web"].region == "us-east-1" and units["web"].start == -30


def test_html_is_self_contained_and_escapes_what_it_shows(report: RolloutReport) -> None:
    page = render(report, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "&lt;script&gt;" in page  # the error text, escaped
    # nothing to fetch: no src or href attribute, no url() in the CSS, no @import
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page
    assert page.count("<svg") == 6  # timeline, weights, capacity, 2 metrics, apply
    for label in ("max 0.02", "2 x baseline", "slot green", "one-box: web@us-west-2"):
        assert label in page, label


def test_markdown_has_mermaid_charts_and_the_numbers(report: RolloutReport) -> None:
    text = render(report, "markdown")
    assert text.count("```mermaid") == 4  # steps, weights, capacity, apply
    assert "gantt" in text and "xychart-beta" in text
    gantt = text.split("```mermaid", 2)[1]
    assert ":crit, s4," in gantt  # the failed analysis
    row = "| errors | 0.05 (400) | 0.01 (3600) | max 0.02, max_ratio 2, min_samples 100 | fail |"
    assert row in text
    assert "section one-box" in text


def test_a_report_file_must_be_html_or_markdown(report: RolloutReport, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"must end in \.html or \.md"):
        write_report(report, tmp_path / "report.pdf")
    assert write_report(report, tmp_path / "sub" / "r.md") == "markdown"
    assert (tmp_path / "sub" / "r.md").read_text().startswith("## Rollout of `checkout`")


def test_an_unknown_rollout_is_a_usage_error(tmp_path: Path) -> None:
    state = write_canary_journal(tmp_path / "state.db")
    with pytest.raises(UsageError, match="fleet 'checkout' has no rollout 'ro-nope'"):
        load_report(state, "checkout", "ro-nope")
    with pytest.raises(UsageError, match="fleet 'web' has no rollout 'ro-canary'"):
        load_report(state, "web", "ro-canary")  # another fleet's rollout
    with pytest.raises(UsageError, match="fleet 'db' has no rollout yet"):
        load_report(state, "db")
    state.close()


def test_history_refuses_a_report_without_a_fleet_or_with_another_format(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from immutable_sdk.cli import main

    spec = str(tmp_path / "spec.yaml")  # never opened: the options are checked first
    runner = CliRunner()
    out = runner.invoke(main, ["history", "-f", spec, "--report", "r.html"])
    assert out.exit_code == 2 and "need --fleet" in out.stderr
    out = runner.invoke(main, ["history", "-f", spec, "--fleet", "web", "--report", "r.pdf"])
    assert out.exit_code == 2 and "must end in .html or .md" in out.stderr
