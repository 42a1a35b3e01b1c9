"""Built-in image builders (plugins)."""
