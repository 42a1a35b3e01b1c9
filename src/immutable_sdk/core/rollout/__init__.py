"""core.rollout."""
