"""Analysis blocks are validated by the providers' registry, like health checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from immutable_sdk.errors import SpecError
from immutable_sdk.plugin import (
    AnalysisProviderFactory,
    MetricQuery,
    MetricSamples,
    PluginContext,
    Registry,
    analysis_schema,
    hookimpl,
)
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.spec.schema import composed_schema

SPEC = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {{builder: ami, id: ami-0123456789abcdef0}}
fleets:
  checkout:
    image: web
    instance_type: t3.micro
    capacity: {{min: 2, desired: 2, max: 4}}
    traffic:
      route53: {{zone: example.com., record: checkout.example.com}}
      slots:
        blue: {{target_group: checkout-blue}}
        green: {{target_group: checkout-green}}
    strategy:
      type: canary
      steps:
        - {{weight: 10}}
        - analysis: {analysis}
"""


class Constant:
    """A third-party provider registered in code."""

    @hookimpl
    def immutable_sdk_add_analysis_providers(
        self, registry: Registry[AnalysisProviderFactory]
    ) -> None:
        schema = analysis_schema(
            "constant",
            description="Every metric is its 'value'.",
            metric={"value": {"type": "number", "description": "The value."}},
            metric_required=["value"],
        )
        registry.add("constant", Provider, schema=schema)


class Provider:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def samples(self, queries: Sequence[MetricQuery], ctx: PluginContext) -> list[MetricSamples]:
        return [MetricSamples(float(q.metric["value"]), 100) for q in queries]


def problems(tmp_path: Path, analysis: str, extra: Sequence[object] = ()) -> list[str]:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(analysis=analysis))
    try:
        load_spec([path], plugins=load_plugins(extra, autoload=False), environ={})
    except SpecError as exc:
        return [
            f"{p.location.line}:{p.location.column}: {p.path}: {p.message}" for p in exc.problems
        ]
    return []


def test_an_unknown_provider_is_a_located_error_with_a_hint(tmp_path: Path) -> None:
    found = problems(tmp_path, "{type: prometheos, window: 1m, metrics: [{name: e, max: 1}]}")
    assert found == [
        "20:28: fleets.checkout.strategy.steps[1].analysis.type: unknown analysis provider "
        "'prometheos' (known: cloudwatch-alarm, cloudwatch-metrics, prometheus); did you mean "
        "'prometheus'?"
    ]


def test_a_providers_own_keys_and_the_shared_ones_are_checked(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "{type: cloudwatch-metrics, window: 1m, metrics: [{name: e, preset: 5xx-rate, max: 1, "
        "dry_run: maybe, compare: {test: t-test}, statistik: p99}]}",
    )
    text = "\n".join(found)
    assert "metrics[0].dry_run: expected true or false, got 'maybe'" in text
    assert "metrics[0].compare.test: expected 'mann-whitney', got 't-test'" in text
    assert "metrics[0].statistik: unknown key 'statistik'; did you mean 'statistic'?" in text


def test_a_third_party_provider_validates_through_its_schema(tmp_path: Path) -> None:
    ok = "{type: constant, window: 1m, metrics: [{name: e, value: 1, max: 2, dry_run: true}]}"
    assert problems(tmp_path, ok, [Constant()]) == []
    bad = problems(
        tmp_path, "{type: constant, window: 1m, metrics: [{name: e, max: 2}]}", [Constant()]
    )
    assert bad == [
        "20:60: fleets.checkout.strategy.steps[1].analysis.metrics[0]: missing required key 'value'"
    ]


def test_the_editor_schema_lists_the_providers_in_the_canary_step() -> None:
    schema = composed_schema(load_plugins([Constant()], autoload=False))
    step = schema["$defs"]["strategy.canary"]["properties"]["steps"]["items"]
    analysis = step["properties"]["analysis"]
    assert analysis["properties"]["type"]["enum"] == [
        "cloudwatch-alarm",
        "cloudwatch-metrics",
        "constant",
        "prometheus",
    ]
    ref = analysis["allOf"][2]["then"]["$ref"]
    assert ref.endswith("#/$defs/analysis.constant") and ref.startswith("https://")
    assert "analysis.constant" in schema["$defs"]


def test_the_documented_third_party_provider_is_under_60_lines() -> None:
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"<!-- test -->\s*\n```python\n(.*?)\n```", page, re.DOTALL)
    (provider,) = [b for b in blocks if "def immutable_sdk_add_analysis_providers" in b]
    assert len(provider.splitlines()) < 60, len(provider.splitlines())


def test_the_iam_policy_allows_querying_amp_only_for_signed_prometheus(tmp_path: Path) -> None:
    from immutable_sdk.core.iam.policy import allowed_actions, policy_document

    def actions(analysis: str) -> set[str]:
        path = tmp_path / "spec.yaml"
        path.write_text(SPEC.format(analysis=analysis))
        spec = load_spec([path], plugins=load_plugins(autoload=False), environ={})
        return set(allowed_actions(policy_document(spec, account="123456789012")))

    block = (
        "{type: prometheus, url: 'https://aps.example', window: 1m, %s "
        "metrics: [{name: e, query: up, max: 1}]}"
    )
    assert "aps:QueryMetrics" in actions(block % "sigv4: {},")
    assert not any(a.startswith("aps:") for a in actions(block % ""))
    assert "cloudwatch:GetMetricData" in actions(
        "{type: cloudwatch-metrics, window: 1m, metrics: [{name: e, preset: 5xx-rate, max: 1}]}"
    )
