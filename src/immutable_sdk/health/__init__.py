"""Built-in health checks (plugins)."""
