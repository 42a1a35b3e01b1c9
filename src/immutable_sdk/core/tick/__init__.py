"""Ticks: rollouts advanced a safe step at a time, by any process (``immutable-sdk reconcile``).

``horizon`` decides how long a process may wait: ``apply`` waits everything out (an unlimited
horizon); a reconcile tick polls only within its budget and never sleeps through a named wait
(bake, pause, analysis window, DNS TTL, keep-previous, wave bake): it journals the wait as an
absolute deadline and suspends (``Suspended``). ``waits`` reads those deadlines back, so the
next tick, in any process, continues where the last one stopped. ``reconcile`` runs one tick
over a spec's units and says what each waits for (``results.ReconcileResult``).
"""
