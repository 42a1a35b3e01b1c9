"""What AWS offers, as the installed botocore knows it: the regions of every partition and the
EC2 instance types.

Read from botocore's data files without importing botocore: validating a spec stays light and
offline. What is newer than the installed botocore is unknown until it is upgraded.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import re
from collections.abc import Iterator

_INSTANCE_TYPES = re.compile(r'"InstanceType":\{\s*"type":"string",\s*"enum":\[(.*?)\]', re.S)


def _data_folders() -> Iterator[str]:
    spec = importlib.util.find_spec("botocore")
    for folder in spec.submodule_search_locations or () if spec is not None else ():
        yield os.path.join(folder, "data")


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition (aws, aws-cn, aws-us-gov, ...); empty if unreadable."""
    for folder in _data_folders():
        try:
            with open(os.path.join(folder, "partitions.json"), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        return frozenset(
            region
            for partition in data.get("partitions", ())
            for region in partition.get("regions", {})
        )
    return frozenset()


@functools.cache
def known_instance_types() -> frozenset[str]:
    """Every EC2 instance type of the newest EC2 API model; empty if unreadable."""
    for folder in _data_folders():
        try:
            versions = sorted(os.listdir(os.path.join(folder, "ec2")), reverse=True)
        except OSError:
            continue
        for version in versions:
            base = os.path.join(folder, "ec2", version, "service-2.json")
            try:
                if os.path.exists(base + ".gz"):
                    with gzip.open(base + ".gz", "rt", encoding="utf-8") as fh:
                        text = fh.read()
                else:
                    with open(base, encoding="utf-8") as fh:
                        text = fh.read()
            except (OSError, ValueError):
                continue
            found = _INSTANCE_TYPES.search(text)
            if found is not None:
                try:
                    return frozenset(json.loads(f"[{found.group(1)}]"))
                except ValueError:
                    return frozenset()
    return frozenset()
