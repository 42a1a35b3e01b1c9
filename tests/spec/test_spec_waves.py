"""The ``waves:`` section: shape, references, and what the model holds."""

from __future__ import annotations

from collections.abc import Callable

from immutable_sdk.spec.model import Spec, WaveSpec

from .conftest import VALID, ProblemsOf, Writer, only

FLEETS = """\
  api:
    image: web
    instance_type: t3.small
    capacity: {min: 1, max: 2}
    depends_on: [db]
  db:
    image: web
    instance_type: t3.small
    capacity: {min: 1, max: 2}
"""


def spec_with(waves: str) -> str:
    return VALID + FLEETS + "waves:\n" + waves


def test_waves_load_into_the_model_with_defaults(write: Writer, load: Callable[..., Spec]) -> None:
    spec = load(
        write(
            "spec.yaml",
            spec_with(
                "  - {name: one-box, fleets: [db], regions: [us-east-1], bake: 30m}\n"
                "  - {name: rest, max_regions_in_flight: 2, stop_on_failure: false}\n"
            ),
        )
    )
    assert spec.waves[0].name == "one-box"
    assert spec.waves[0].fleets == ("db",)
    assert spec.waves[0].bake == 1800.0
    assert (spec.waves[0].max_regions_in_flight, spec.waves[0].stop_on_failure) == (1, True)
    assert spec.waves[1] == WaveSpec(
        "rest",
        fleets=("*",),
        regions=("*",),
        bake=0.0,
        max_regions_in_flight=2,
        stop_on_failure=False,
        location=spec.waves[1].location,
    )
    assert spec.waves[1].location.line > 0


def test_a_spec_without_waves_has_none(write: Writer, load: Callable[..., Spec]) -> None:
    assert load(write("spec.yaml")).waves == ()


def test_wave_problems_are_located_and_explained(write: Writer, problems_of: ProblemsOf) -> None:
    lines = problems_of(
        write(
            "spec.yaml",
            spec_with(
                "  - {name: first, fleets: [api, 'nothing-*'], regions: [eu-west-1], bake: soon}\n"
                "  - {name: first, fleets: [web], max_regions_in_flight: 0, color: red}\n"
            ),
        )
    )
    assert "expected a duration" in only(lines, "waves[0].bake")
    assert "'nothing-*' selects no fleet" in only(lines, "waves[0].fleets[1]")
    assert "us-east-1 only" in only(lines, "waves[0].regions[0]")
    assert "used twice" in only(lines, "waves[1].name")
    assert "color" in only(lines, "waves[1].color")
    assert "max_regions_in_flight" in " ".join(lines)
    assert "fleet 'api' is in no wave" in " ".join(lines)  # its wave selects another region
    assert "fleet 'db' is in no wave" in " ".join(lines)


def test_a_fleet_cannot_depend_on_a_fleet_of_a_later_wave(
    write: Writer, problems_of: ProblemsOf
) -> None:
    lines = problems_of(
        write("spec.yaml", spec_with("  - {name: early, fleets: [api]}\n  - {name: late}\n"))
    )
    line = only(lines, "fleets.api.depends_on")
    assert "depends on 'db', which rolls out in a later wave (2)" in line
