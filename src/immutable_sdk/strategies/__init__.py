"""Built-in deployment strategies (plugins)."""
