"""Everything between a ``Spec`` and ``aws/``: one module or package per concept (internal)."""
