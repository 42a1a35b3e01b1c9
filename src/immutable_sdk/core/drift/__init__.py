"""core.drift."""
