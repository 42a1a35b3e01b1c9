"""``immutable_sdk.aws_lambda.handler``: ticks as an SQS-triggered AWS Lambda function.

For teams that prefer Lambda to a worker service: an event source mapping on the project's work
queue invokes ``handler`` with a batch of Tick messages; each is ticked and answered like
``immutable-sdk worker`` does (heartbeats while it ticks, the token's answer), and a message
that is not a tick is reported as a batch item failure (SQS redelivers it, then moves it to the
dead-letter queue). Limits (docs/step-functions.md): a function runs at most 15 minutes, so a
tick must fit (the reconcile tick's budget); there is no Packer in the function, so images are
built elsewhere (a worker, CI) before the rollout needs them.

Configuration, from the function's environment: ``IMMUTABLE_SDK_SPEC`` (spec files in the
deployment package, ``:``-separated: later files overlay earlier ones), optionally
``IMMUTABLE_SDK_TICK`` (``module:factory``, as ``worker --tick``) and
``IMMUTABLE_SDK_LOCK_LEASE`` (a duration, as ``worker --lease``). Set the function's batch
size to 1 unless ticks are short, and the queue's visibility timeout to at least six times the
function's timeout (AWS's advice for SQS event sources).
"""

from __future__ import annotations

import os
from typing import Any

from ..core.orchestrator.lambda_ticks import LambdaTicks

__all__ = ["handler"]

_ticks: LambdaTicks | None = None  # one per container: the spec is loaded once


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: tick every record of an SQS event; the records to retry."""
    global _ticks
    if _ticks is None:
        _ticks = LambdaTicks.from_environment(os.environ)
    return _ticks.handle(event)
