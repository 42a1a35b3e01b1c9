"""core.iam."""
