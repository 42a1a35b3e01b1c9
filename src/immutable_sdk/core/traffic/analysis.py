"""The ``analysis`` step of a slot rollout: an analysis provider reads, the judge decides.

For ``window`` seconds (plus what is left of the record's TTL after a shift) the fleet's health
checks keep watching the new slot, as in a bake; every ``interval`` (default: the window) and
at the end of the window the provider the block names (``type``) is asked for the samples of
each metric for the new (canary) slot, and for the previous (baseline) slot when the metric
compares with it; ``judge`` decides:

* fail: the step fails at once and the rollout rolls back;
* pass (at the end of the window): the rollout goes on;
* inconclusive (at the end): the rollout pauses until ``immutable-sdk promote`` (go on) or
  ``immutable-sdk abort`` (roll back), or fails with ``inconclusive: fail``.

Metrics marked ``dry_run`` are judged and reported but never decide. Every judgement is emitted
as an ``analysis.result`` event and journaled as a ``note`` entry ``{"note": "analysis", ...}``
(see ``Judgement.to_dict``); the last one is also the step's result. A provider that cannot
read (an unreachable Prometheus, a refused CloudWatch call) fails the step: a canary that
cannot be judged does not go on.

``immutable-sdk promote`` ends the step early (a promoted analysis counts as passed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ...errors import GateFailed, ImmutableSdkError, PluginError, UsageError
from ...plugin import (
    AnalysisProvider,
    AnalysisProviderFactory,
    AnalysisSlot,
    MetricQuery,
    MetricSamples,
    PluginEntry,
    Registry,
)
from ...units import parse_duration
from ..analysis.judge import FAIL, PASS, Judgement, MetricRule, judge
from ..context import Context
from ..rollout.runner import SIGNAL_POLL
from ..tick.horizon import OPERATOR, Suspended


class AnalysisHost(Protocol):
    """What the analysis step needs from the rollout that runs it (a ``SlotRunner``)."""

    @property
    def ctx(self) -> Context: ...

    def interruptible(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run ``work``; an operator's promote ends it early with ``{"ended_by": "promote"}``."""

    def ttl_left(self) -> float:
        """Seconds until DNS caches may still hold the weights before the last shift."""

    def watch(self, seconds: float) -> None:
        """Watch the new slot with the fleet's health checks for ``seconds`` (a bake)."""

    def wait(self, seconds: float) -> None:
        """Wait through the clock, reading operator signals."""

    def note(self, **data: Any) -> None:
        """Journal ``data`` under the current step."""

    def analysis_slots(self) -> tuple[AnalysisSlot, AnalysisSlot | None]:
        """The new slot (canary) and the previous one (baseline; None for a new fleet)."""

    def deadline(self, seconds: float) -> tuple[float, float]:
        """(since, until): the step's window of ``seconds`` from its (journaled) start,
        lengthened by what was left of the DNS TTL then."""

    def waited(self, key: str) -> Any:
        """What an earlier tick journaled about this step's wait (None: nothing)."""

    def look(self) -> None:
        """One poll of the fleet's health checks on the new slot."""

    def poll_interval(self) -> float:
        """Seconds between two polls of the fleet's health checks."""


class Analysis:
    """One analysis block: its provider, its metrics and its timing."""

    def __init__(self, config: Mapping[str, Any], providers: Registry[AnalysisProviderFactory]):
        self.kind = str(config.get("type"))
        if self.kind not in providers:
            raise UsageError(f"unknown analysis provider {self.kind!r}")
        self.entry = providers.get(self.kind)
        self.provider: AnalysisProvider = self._call(lambda: self.entry.factory(config), "start")
        window = config.get("window", config.get("duration"))
        if window is None:
            raise UsageError(f"analysis {self.kind!r} has no window")
        self.window = parse_duration(window)
        interval = config.get("interval", getattr(self.provider, "interval", None))
        self.interval = parse_duration(interval) if interval is not None else 0.0
        if self.interval <= 0:  # judged only at the end of the window
            self.interval = self.window
        self.on_inconclusive = str(config.get("inconclusive", "pause"))
        samples = int(config.get("min_samples", 1))
        blocks = getattr(self.provider, "metrics", None) or config.get("metrics") or ()
        self.rules = [MetricRule.parse(m, samples) for m in blocks]

    def _call(self, work: Callable[[], Any], doing: str) -> Any:
        try:
            return work()
        except ImmutableSdkError:
            raise
        except Exception as exc:  # someone else's code: name it
            raise PluginError(
                self.entry.plugin,
                f"analysis provider {self.kind!r} failed to {doing}: {exc!r}",
                distribution=self.entry.distribution,
            ) from exc

    def judge(
        self, ctx: Context, canary: AnalysisSlot, baseline: AnalysisSlot | None, end: float
    ) -> Judgement:
        """Ask the provider for every metric's samples over the window ending at ``end``."""
        start = end - self.window
        queries: list[MetricQuery] = []
        for rule in self.rules:
            queries.append(MetricQuery(rule.block, canary, start, end))
            if rule.needs_baseline and baseline is not None:
                queries.append(MetricQuery(rule.block, baseline, start, end))
        answers = self._call(lambda: list(self.provider.samples(queries, ctx)), "read metrics")
        _check_answers(self.entry, queries, answers)
        pairs: list[tuple[MetricSamples, MetricSamples | None]] = []
        it = iter(answers)
        for rule in self.rules:
            c = next(it)
            pairs.append((c, next(it) if rule.needs_baseline and baseline is not None else None))
        return judge(self.kind, self.rules, pairs, start, end)


def _check_answers(
    entry: PluginEntry[Any], queries: Sequence[MetricQuery], answers: Sequence[Any]
) -> None:
    if len(answers) != len(queries) or not all(isinstance(a, MetricSamples) for a in answers):
        raise PluginError(
            entry.plugin,
            f"analysis provider {entry.name!r} answered {len(answers)} value(s) to "
            f"{len(queries)} queries; it must return one MetricSamples per query, in order",
            distribution=entry.distribution,
        )


def analyze(
    host: AnalysisHost, config: Mapping[str, Any], providers: Registry[AnalysisProviderFactory]
) -> dict[str, Any]:
    analysis = Analysis(config, providers)
    judged: dict[str, Any] = {}
    out = host.interruptible(lambda: _run(host, analysis, judged))
    return {**judged, **out}


def _run(host: AnalysisHost, analysis: Analysis, judged: dict[str, Any]) -> dict[str, Any]:
    clock = host.ctx.clock
    canary, baseline = host.analysis_slots()
    if baseline is None and any(r.needs_baseline for r in analysis.rules):
        raise UsageError("an analysis that compares needs a previous slot to compare with")
    total = analysis.window + host.ttl_left()
    start = clock.monotonic()
    while True:
        left = total - (clock.monotonic() - start)
        if left > 0:
            host.watch(min(analysis.interval, left))
            left = total - (clock.monotonic() - start)
        judgement = analysis.judge(host.ctx, canary, baseline, clock.now())
        judged.clear()
        judged.update(judgement.to_dict())
        host.ctx.emit("analysis.result", final=left <= 0 or judgement.verdict == FAIL, **judged)
        host.note(note="analysis", **judged)
        if judgement.verdict == FAIL:
            raise GateFailed(
                f"analysis failed: {judgement.summary}",
                details=_reasons(judgement),
                checks=("analysis",),
            )
        if left <= 0:
            break
    if judgement.verdict == PASS:
        return judged
    if analysis.on_inconclusive == "fail":
        raise GateFailed(f"analysis inconclusive: {judgement.summary}", checks=("analysis",))
    host.ctx.emit("analysis.inconclusive", summary=judgement.summary)
    host.ctx.emit("rollout.paused", manual=True, seconds=0)
    while True:  # an operator decides: promote goes on, abort rolls back
        host.wait(SIGNAL_POLL)


def analyze_tick(
    host: AnalysisHost, config: Mapping[str, Any], providers: Registry[AnalysisProviderFactory]
) -> dict[str, Any]:
    """The analysis step in a reconcile tick: the window is an absolute deadline from the
    step's journaled start; a tick looks at the health checks, judges when a judgement is
    due (every ``interval`` from the start, and at the end), and suspends until the next
    one (at most one tick a health check interval). Judgements are journaled as in
    ``analyze``; an inconclusive end waits for an operator (``promote`` goes on, ``abort``
    rolls back) across ticks."""
    analysis = Analysis(config, providers)
    judged: dict[str, Any] = {}

    def work() -> dict[str, Any]:
        canary, baseline = host.analysis_slots()
        if baseline is None and any(r.needs_baseline for r in analysis.rules):
            raise UsageError("an analysis that compares needs a previous slot to compare with")
        since, end = host.deadline(analysis.window)
        if host.waited("inconclusive"):  # decided in an earlier tick: an operator's turn
            raise Suspended(None, OPERATOR, {"since": since, "inconclusive": True})
        host.look()
        now = host.ctx.clock.now()
        last = host.waited("judged_at")
        judged_at = float(last) if isinstance(last, (int, float)) else since
        if now >= min(judged_at + analysis.interval, end):
            judgement = analysis.judge(host.ctx, canary, baseline, min(now, end))
            judged.clear()
            judged.update(judgement.to_dict())
            final = now >= end or judgement.verdict == FAIL
            host.ctx.emit("analysis.result", final=final, **judged)
            host.note(note="analysis", **judged)
            if judgement.verdict == FAIL:
                raise GateFailed(
                    f"analysis failed: {judgement.summary}", details=_reasons(judgement)
                )
            if now >= end:
                if judgement.verdict == PASS:
                    return judged
                if analysis.on_inconclusive == "fail":
                    raise GateFailed(f"analysis inconclusive: {judgement.summary}")
                host.ctx.emit("analysis.inconclusive", summary=judgement.summary)
                host.ctx.emit("rollout.paused", manual=True, seconds=0)
                raise Suspended(None, OPERATOR, {"since": since, "inconclusive": True})
            judged_at = now
        # judged at most once a health check interval: a tick is a process of its own
        next_at = min(max(judged_at + analysis.interval, now + host.poll_interval()), end)
        detail = {"since": since, "until": end, "judged_at": judged_at}
        raise Suspended(next_at, "analysis", detail)

    out = host.interruptible(work)
    return {**judged, **out}


def _reasons(judgement: Judgement) -> dict[str, str]:
    return {m.name: f"{m.verdict}: {m.reason}" for m in judgement.metrics}
