"""Rollouts on AWS Step Functions: one generic state machine, ticks delivered through SQS.

Step Functions holds the timers, the retries and the audit history; the SDK holds the
decisions. The state machine (``definition``) walks the waves of an execution's input in order,
a Map over each wave's units, and per unit loops Tick -> Choice -> Wait. A Tick is an SQS
``sendMessage.waitForTaskToken`` task: a worker (``worker``, or the Lambda handler) runs one
tick of the unit through a ``Ticker`` (``tick``) and answers with the task token.
"""
