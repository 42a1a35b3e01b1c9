"""core.images."""
