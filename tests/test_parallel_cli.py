"""What a person sees of parallel applies: the apply options and the waves in the plan."""

from __future__ import annotations

from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.cli.render import console, plan_table
from immutable_sdk.results import Plan, PlanItem


def test_apply_offers_parallelism_and_fail_fast() -> None:
    out = CliRunner().invoke(main, ["apply", "--help"])
    assert out.exit_code == 0
    assert "--parallelism" in out.output and "--fail-fast" in out.output
    bad = CliRunner().invoke(main, ["apply", "-f", "spec.yaml", "--parallelism", "0"])
    assert bad.exit_code == 2
    assert "--parallelism" in bad.output


def test_the_plan_table_shows_each_fleets_wave_and_the_waves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = Plan(
        "shop",
        (
            PlanItem("canary", "replace", ("image_id changed",), "r-1", "r-2", wave="one-box"),
            PlanItem("web", "noop", (), "r-1", "r-1", wave="rest"),
        ),
        waves=(
            {
                "name": "one-box",
                "fleets": ["canary"],
                "regions": ["us-east-1"],
                "bake": 1800.0,
                "max_regions_in_flight": 1,
                "stop_on_failure": True,
            },
            {
                "name": "rest",
                "fleets": ["web"],
                "regions": ["us-east-1"],
                "bake": 0.0,
                "max_regions_in_flight": 1,
                "stop_on_failure": False,
            },
        ),
    )
    path = tmp_path / "out.txt"
    with path.open("w") as f:
        console(f).print(plan_table(plan))
    text = path.read_text()
    assert text.splitlines()[2].split()[1] == "wave"  # the first column of the header
    assert "wave 1 one-box: canary in us-east-1; bake 30m; at most 1 region(s) at once" in text
    assert "wave 2 rest: web in us-east-1; at most 1 region(s) at once; goes on after" in text
    assert plan.to_dict()["waves"][0]["name"] == "one-box"
    assert plan.to_dict()["items"][0]["wave"] == "one-box"
