"""A step in words for a person, knowing which rollout runs it and in which direction.

``Step.describe`` speaks of a rollout to a new release. The same steps also undo a failed
rollout (they launch instances of the *previous* release and retire those of the *failed*
one), carry out ``immutable-sdk rollback`` (back to an earlier release), and replace instances
within one release (``recycle``, a drift fix); this wording says which, with the release ids.
"""

from __future__ import annotations

from ...lifecycle import Launch, Retire, Step
from ...plugin import RolloutInfo


def step_text(step: Step, info: RolloutInfo, *, rolling_back: bool = False) -> str:
    """``step.describe()``, with the releases a launch and a retire are really about.

    ``rolling_back``: the runner is undoing ``info`` (from ``to_release`` back to
    ``from_release``) after it failed or was aborted.
    """
    if not isinstance(step, (Launch, Retire)) or (isinstance(step, Retire) and step.slot):
        return step.describe()
    where = f" in slot {step.slot}" if step.slot else ""
    n = step.count
    if rolling_back:
        launch = f"of the previous release {info.from_release}"
        retire = f"of the failed release {info.to_release}"
    elif info.rollback:
        launch = f"of the earlier release {info.to_release}"
        retire = f"of release {info.from_release}"
    elif info.from_release == info.to_release:  # recycle, a drift fix: one release
        launch = f"replacing older ones, of release {info.to_release}"
        retire = "replaced (older or drifted)"
    else:
        launch = f"of the new release {info.to_release}"
        retire = f"of the previous release {info.from_release or ''}".rstrip()
    if isinstance(step, Launch):
        return f"launch {n} instance(s) {launch}{where}"
    return f"retire {n} instance(s) {retire}"
