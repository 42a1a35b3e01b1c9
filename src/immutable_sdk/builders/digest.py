"""Content addressing for builders: one digest over every input that shapes an image.

A digest is the SHA-256 of a canonical JSON document of the builder's inputs (builder name and
version, template bytes, variables, referenced files' bytes). Equal inputs give equal digests on
every machine: paths enter it relative to the template's folder, never absolute, and mappings are
sorted. The digest is tagged on the AMI (``immutable-sdk:digest``), so an unchanged image is found
instead of rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PREFIX = "sha256:"
_CHUNK = 1 << 20


def canonical_digest(inputs: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of ``inputs`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def path_digest(path: Path) -> str:
    """The content of a file, or of a folder tree (names and bytes), or ``missing``.

    A missing file still enters the digest (as ``missing``), so creating it later changes it.
    """
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        entries = {
            str(p.relative_to(path).as_posix()): file_sha256(p)
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
        return canonical_digest({"tree": entries})
    return "missing"


def files_digest(base: Path, references: Iterable[str]) -> dict[str, str]:
    """``{reference as written: content digest}`` for paths resolved against ``base``."""
    out: dict[str, str] = {}
    for ref in sorted(set(references)):
        path = Path(ref)
        out[ref] = path_digest(path if path.is_absolute() else base / path)
    return out


def short(digest: str, length: int = 12) -> str:
    """A digest's first hex characters, for names and messages."""
    return digest.removeprefix(PREFIX)[:length]
