"""File references in a spec (``format: file``): they must exist, and should stay in its folder.

A path is relative to the folder of the spec file that wrote it. One that leaves that folder
(``../../etc/passwd``, an absolute path, ``~/...``, or a symlink pointing out) is read all the
same, but warned about: user data and templates end up on instances, and a spec reviewed in a
pull request should not read what its reviewers cannot see. ``validate --strict`` refuses it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

from ..errors import SpecProblem
from .nodes import LDict, PathPart, dotted, where


def conforming(files: Sequence[str]) -> Callable[[object], bool]:
    """The quick check of ``format: file`` for one validation: True for a file that exists in
    the folder of every spec file (and stays there); anything else gets a closer look."""
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}

    @functools.lru_cache(maxsize=1024)
    def good(value: str) -> bool:
        return all(
            os.path.isfile(os.path.join(d, os.path.expanduser(value))) and _leaves(d, value) is None
            for d in folders
        )

    return lambda value: bool(folders) and isinstance(value, str) and good(value)


def file_problems(
    root: LDict, path: tuple[PathPart, ...], value: str
) -> tuple[SpecProblem | None, SpecProblem | None]:
    """(error, warning) about the file reference at ``path``: missing, or leaving the folder."""
    location, shown = where(root, path)
    base = os.path.dirname(os.path.abspath(location.file))
    full = os.path.join(base, os.path.expanduser(value))
    if not os.path.isfile(full):
        if os.path.isdir(full):
            what = "is a directory, not a file"
        elif os.path.exists(full):  # a FIFO or a device: reading it could block or never end
            what = "is not a regular file"
        else:
            what = "does not exist"
        message = f"file {value!r} {what} (looked at {full})"
        return SpecProblem(location, dotted(shown), message), None
    how = _leaves(base, value)
    if how is None:
        return None, None
    return None, SpecProblem(
        location,
        dotted(shown),
        f"file {value!r}{how} is outside the folder of this spec file ({base}); keep the "
        "files a spec reads next to it (validate --strict refuses this)",
    )


def _leaves(base: str, value: str) -> str | None:
    """How ``value`` leaves ``base``, as words to put after it (None: it stays inside)."""
    if value.startswith("~"):
        return f" (in a home folder: {os.path.expanduser(value)})"
    if os.path.isabs(value):
        return " (an absolute path)"
    full = os.path.normpath(os.path.join(base, value))
    if not _inside(full, base):
        return ""
    real = os.path.realpath(full)
    if not _inside(real, os.path.realpath(base)):
        return f" (a symbolic link to {real})"
    return None


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder
