"""Reading a Packer template without Packer: its kind, declared variables and referenced files.

Three kinds: HCL2 (``*.pkr.hcl``), HCL2 in JSON syntax (``*.pkr.json``) and
legacy JSON (any other ``*.json``). Packer is run from the template's folder, so a relative path in
the template means the same file to Packer and to the digest.

Referenced files (best effort, documented in the packer builder): attributes named ``source``,
``script``, ``scripts``, ``playbook_file`` or ``user_data_file`` whose value is a literal string (or
a list of them), e.g. a ``file`` provisioner's ``source`` or a ``shell`` provisioner's ``script``.
``${path.root}`` / ``${path.cwd}`` (HCL2) and ``{{template_dir}}`` (JSON) are understood; a path
computed any other way cannot be known and is left out (the template's own bytes still count).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFERENCE_KEYS = frozenset({"source", "script", "scripts", "playbook_file", "user_data_file"})
HCL2 = "hcl2"
LEGACY_JSON = "json"

_VARIABLE = re.compile(r'^[ \t]*variable[ \t]+(?:"([^"]+)"|([A-Za-z_][\w-]*))[ \t]*\{', re.M)
_VARIABLES_BLOCK = re.compile(r"^[ \t]*variables[ \t]*\{", re.M)
_ATTRIBUTE = re.compile(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*=", re.M)
_REFERENCE = re.compile(
    r"^[ \t]*(" + "|".join(sorted(REFERENCE_KEYS)) + r')[ \t]*=[ \t]*(\[[^\]]*\]|"[^"\n]*")', re.M
)
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_HEREDOC = re.compile(r"<<-?([A-Za-z_]\w*)[ \t]*\n")


class TemplateError(ValueError):
    """The template cannot be read (missing, not JSON, unknown kind)."""


@dataclass(frozen=True)
class PackerTemplate:
    path: Path  # the template file
    kind: str  # HCL2 or LEGACY_JSON
    variables: frozenset[str]  # declared variable names
    references: tuple[str, ...]  # referenced files, relative to ``folder`` unless absolute

    @property
    def folder(self) -> Path:
        """Where Packer runs, and what relative paths in the template are relative to."""
        return self.path.parent


def load_template(path: Path) -> PackerTemplate:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read: {exc}") from exc
    legacy = path.suffix == ".json" and not path.name.endswith(".pkr.json")
    kind = LEGACY_JSON if legacy else HCL2
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from exc
        declared = (
            doc.get("variables" if legacy else "variable", {}) if isinstance(doc, dict) else {}
        )
        variables = set(declared) if isinstance(declared, dict) else set()
        references = _json_references(doc)
    else:
        variables, references = hcl_variables(text), hcl_references(text)
    return PackerTemplate(
        path=path,
        kind=kind,
        variables=frozenset(variables),
        references=tuple(sorted(references)),
    )


def strip_hcl_comments(text: str) -> str:
    """HCL without ``#``, ``//`` and ``/* */`` comments and heredoc bodies; strings kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            m = _STRING.match(text, i)
            end = m.end() if m else i + 1
            out.append(text[i:end])
            i = end
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("<<", i) and (m := _HEREDOC.match(text, i)):
            # The body is data (a script), not configuration: skip to the closing marker.
            close = re.compile(r"^[ \t]*" + re.escape(m.group(1)) + r"[ \t]*$", re.M)
            found = close.search(text, m.end())
            out.append('""\n')
            i = n if found is None else found.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _block_body(text: str, open_brace: int) -> str:
    depth = 0
    for j in range(open_brace, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : j]
    return text[open_brace + 1 :]


def hcl_variables(text: str) -> set[str]:
    """Names of ``variable "x" {}`` blocks and of the keys of ``variables {}`` blocks."""
    clean = strip_hcl_comments(text)
    names = {m.group(1) or m.group(2) for m in _VARIABLE.finditer(clean)}
    for m in _VARIABLES_BLOCK.finditer(clean):
        body = _block_body(clean, m.end() - 1)
        names.update(a.group(1) for a in _ATTRIBUTE.finditer(_top_level(body)))
    return names


def _top_level(body: str) -> str:
    """The body with nested ``{...}`` and ``[...]`` contents removed (depth-1 lines only)."""
    out: list[str] = []
    depth = 0
    for c in body:
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def _literal_path(value: str, markers: tuple[str, ...]) -> str | None:
    for marker in markers:
        value = re.sub(marker + r"/?", "", value)
    if "${" in value or "{{" in value or not value:
        return None
    return value


_HCL_ROOT = (r"\$\{path\.root\}", r"\$\{path\.cwd\}")
_JSON_ROOT = (r"\{\{\s*template_dir\s*\}\}", r"\{\{\s*pwd\s*\}\}")


def hcl_references(text: str) -> set[str]:
    refs: set[str] = set()
    for m in _REFERENCE.finditer(strip_hcl_comments(text)):
        for s in _STRING.finditer(m.group(2)):
            path = _literal_path(s.group(1), _HCL_ROOT)
            if path:
                refs.add(path)
    return refs


def _json_references(node: Any) -> set[str]:
    refs: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            values = value if isinstance(value, list) else [value]
            if key in REFERENCE_KEYS and all(isinstance(v, str) for v in values):
                for v in values:
                    path = _literal_path(v, _JSON_ROOT + _HCL_ROOT)
                    if path:
                        refs.add(path)
            else:  # a nested block (``"source": {"amazon-ebs": {...}}`` in .pkr.json)
                refs |= _json_references(value)
    elif isinstance(node, list):
        for item in node:
            refs |= _json_references(item)
    return refs


_SETTING = re.compile(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*=[ \t]*(.*)$", re.M)


def template_settings(path: Path) -> dict[str, str]:
    """Every ``name = value`` of a template (HCL2: the value's text on its line; JSON: the
    value as JSON), at any depth; the last one wins. Best effort, for advice about the
    template (which tags Packer puts on its resources, what it modifies before tagging)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if path.suffix == ".json":
        try:
            return _json_settings(json.loads(text))
        except json.JSONDecodeError:
            return {}
    return {m.group(1): m.group(2).strip() for m in _SETTING.finditer(strip_hcl_comments(text))}


def _json_settings(node: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            found[key] = json.dumps(value)
            found.update(_json_settings(value))
    elif isinstance(node, list):
        for item in node:
            found.update(_json_settings(item))
    return found
