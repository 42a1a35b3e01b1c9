"""The AWS regions that exist, in every partition, from the data botocore ships.

Read from botocore's ``partitions.json`` without importing botocore: validating a spec stays
light and offline. A region newer than the installed botocore is unknown until it is upgraded.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition (aws, aws-cn, aws-us-gov, ...); empty if unreadable."""
    spec = importlib.util.find_spec("botocore")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        try:
            with open(os.path.join(folder, "data", "partitions.json"), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        return frozenset(
            region
            for partition in data.get("partitions", ())
            for region in partition.get("regions", {})
        )
    return frozenset()
