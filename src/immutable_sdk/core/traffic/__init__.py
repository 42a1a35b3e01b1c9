"""core.traffic."""
