"""Reading a Packer template without Packer: its kind, variables, referenced files, base images.

Three kinds: HCL2 (``*.pkr.hcl``, read with a real HCL2 parser, python-hcl2), HCL2 in JSON
syntax (``*.pkr.json``) and legacy JSON (any other ``*.json``). Packer is run from the
template's folder, so a relative path in the template means the same file to Packer and to the
digest.

**Referenced files**: attributes named ``source``, ``script``, ``scripts``, ``playbook_file`` or
``user_data_file`` at any depth, whose value is a string or a list of strings (a ``file``
provisioner's ``source``, a ``shell`` provisioner's ``scripts`` over several lines). A value is
resolved as Packer would: ``${path.root}``/``${path.cwd}`` (HCL2) and ``{{template_dir}}``/
``{{pwd}}`` (JSON) are the template's folder, ``${var.NAME}`` (``{{user `NAME`}}``) the value
passed or the variable's default, ``${local.NAME}`` a local that resolves the same way. A value
that still holds an expression (a function call, a data source) cannot be known: it enters the
digest as written (``unresolved``), and the template's own bytes count as always.

**Base images**: each ``amazon-*`` source's ``source_ami`` or ``source_ami_filter`` (filters,
owners, ``most_recent``), resolved the same way. The builder looks the filter up at plan time,
so that a newer base image is a new digest (a rebuild), not a silently stale golden image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

REFERENCE_KEYS = frozenset({"source", "script", "scripts", "playbook_file", "user_data_file"})
HCL2 = "hcl2"
LEGACY_JSON = "json"
_MARKERS = frozenset({"__is_block__", "__comments__", "__inline_comments__"})
_HCL_EXPRESSION = re.compile(r"\$\{\s*([^{}]*?)\s*\}")
_JSON_EXPRESSION = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_JSON_USER = re.compile(r"user\s+`([^`]+)`")
_MAX_DEPTH = 8  # locals referring to locals
_DEFINITIONS = frozenset({"variable", "variables", "locals", "local"})


class TemplateError(ValueError):
    """The template cannot be read (missing, not JSON or HCL2, unknown kind)."""


@dataclass(frozen=True)
class BaseImage:
    """What one ``amazon-*`` source of a template starts from."""

    source: str  # "amazon-ebs.web"
    ami: str | None = None  # a literal source_ami
    filters: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    most_recent: bool = False
    unresolved: bool = False  # a filter value Packer computes: the base cannot be looked up

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ami": self.ami,
            "filters": dict(sorted(self.filters.items())),
            "owners": list(self.owners),
            "most_recent": self.most_recent,
            "unresolved": self.unresolved,
        }


@dataclass(frozen=True)
class PackerTemplate:
    path: Path  # the template file
    kind: str  # HCL2 or LEGACY_JSON
    variables: frozenset[str]  # declared variable names
    references: tuple[str, ...]  # referenced files, relative to ``folder`` unless absolute
    unresolved: tuple[str, ...] = ()  # referenced paths Packer computes: in the digest as text
    bases: tuple[BaseImage, ...] = ()

    @property
    def folder(self) -> Path:
        """Where Packer runs, and what relative paths in the template are relative to."""
        return self.path.parent


def load_template(path: Path, values: Mapping[str, str] | None = None) -> PackerTemplate:
    """Read ``path``; ``values``: the variables passed to Packer (over the defaults)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read: {exc}") from exc
    legacy = path.suffix == ".json" and not path.name.endswith(".pkr.json")
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from exc
        if not isinstance(doc, dict):
            raise TemplateError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    else:
        doc = parse_hcl(path, text)
    scope = _Scope.of(doc, legacy, values or {})
    refs, unresolved = _references(doc, scope)
    return PackerTemplate(
        path=path,
        kind=LEGACY_JSON if legacy else HCL2,
        variables=frozenset(scope.declared),
        references=tuple(sorted(refs)),
        unresolved=tuple(sorted(unresolved)),
        bases=tuple(_bases(doc, legacy, scope)),
    )


def parse_hcl(path: Path, text: str) -> dict[str, Any]:
    """An HCL2 template as the nested mappings and lists of its ``.pkr.json`` form (blocks
    as lists of bodies), comments dropped, heredocs as strings."""
    import hcl2
    from lark.exceptions import LarkError

    options = hcl2.SerializationOptions(
        with_comments=False, strip_string_quotes=True, preserve_heredocs=False
    )
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except LarkError as exc:
        where = ""
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        if line is not None:
            where = f":{line}:{column}"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TemplateError(f"{path}{where}: invalid HCL2: {message}") from None
    cleaned = _clean(doc)
    assert isinstance(cleaned, dict)
    return cleaned


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if k not in _MARKERS}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _bodies(node: Any) -> Iterator[dict[str, Any]]:
    """The bodies of a block (one mapping, or the list HCL2 makes of repeated blocks)."""
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            yield item


def _labelled(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, body) of blocks with one label: ``variable "x" {}`` -> ("x", {...})."""
    for body in _bodies(node):
        for label, inner in body.items():
            for b in _bodies(inner):
                yield label, b


@dataclass
class _Scope:
    """What a template's expressions can be resolved with: variables and locals."""

    legacy: bool
    declared: set[str]
    variables: dict[str, str]
    locals: dict[str, Any]

    @classmethod
    def of(cls, doc: Mapping[str, Any], legacy: bool, values: Mapping[str, str]) -> _Scope:
        defaults: dict[str, Any] = {}
        if legacy:
            block = doc.get("variables") or {}
            defaults = dict(block) if isinstance(block, dict) else {}
        else:
            for name, body in _labelled(doc.get("variable") or []):
                defaults[name] = body.get("default")
            for body in _bodies(doc.get("variables") or []):  # an older block form
                defaults.update(body)
        known = {k: _text(v) for k, v in defaults.items() if _text(v) is not None}
        known.update({k: str(v) for k, v in values.items()})
        local_values: dict[str, Any] = {}
        for body in _bodies(doc.get("locals") or []):
            local_values.update(body)
        return cls(
            legacy, set(defaults), {k: v for k, v in known.items() if v is not None}, local_values
        )

    def resolve(self, value: Any, depth: int = 0) -> str | None:
        """``value`` with every expression replaced by what it stands for; None when one
        cannot be known (or the value is not a string)."""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return None
        text = str(value)
        pattern = _JSON_EXPRESSION if self.legacy else _HCL_EXPRESSION
        unknown = False

        def substitute(m: re.Match[str]) -> str:
            nonlocal unknown
            found = self._expression(m.group(1), depth)
            if found is None:
                unknown = True
                return m.group(0)
            return found

        out = pattern.sub(substitute, text)
        return None if unknown else out

    def _expression(self, expr: str, depth: int) -> str | None:
        if expr in ("path.root", "path.cwd", "template_dir", "pwd"):
            return "."
        if self.legacy:
            m = _JSON_USER.fullmatch(expr)
            return self.variables.get(m.group(1)) if m else None
        if expr.startswith("var."):
            return self.variables.get(expr[4:])
        if expr.startswith("local.") and depth < _MAX_DEPTH:
            name = expr[6:]
            return self.resolve(self.locals[name], depth + 1) if name in self.locals else None
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _relative(path: str) -> str:
    """``./scripts/a.sh`` -> ``scripts/a.sh``: one spelling per file in the digest."""
    if not path or path.startswith("/"):
        return path
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    return str(PurePosixPath(*parts)) if parts else "."


def _references(doc: Any, scope: _Scope) -> tuple[set[str], set[str]]:
    refs: set[str] = set()
    unresolved: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                values = value if isinstance(value, list) else [value]
                if key in REFERENCE_KEYS and values and all(isinstance(v, str) for v in values):
                    for v in values:
                        path = scope.resolve(v)
                        if path is None:
                            unresolved.add(v)
                        elif path:
                            refs.add(_relative(path))
                else:  # a nested block (``"source": {"amazon-ebs": {...}}``)
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    # Variables and locals define values, not files: a file counts where a block uses it.
    walk({k: v for k, v in doc.items() if k not in _DEFINITIONS})
    return refs, unresolved


def _bases(doc: Mapping[str, Any], legacy: bool, scope: _Scope) -> Iterator[BaseImage]:
    if legacy:
        for i, body in enumerate(_bodies(doc.get("builders") or [])):
            kind = str(body.get("type", ""))
            if kind.startswith("amazon-"):
                yield from _base(f"{kind}.{body.get('name') or i}", body, scope)
        return
    for labels, body in _typed_sources(doc.get("source") or []):
        if labels[0].startswith("amazon-"):
            yield from _base(".".join(labels), body, scope)


def _typed_sources(node: Any) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    """``source "TYPE" "NAME" {...}`` blocks: ((type, name), body)."""
    for kind, inner in _labelled(node):
        for name, body in _labelled(inner) if _has_named_bodies(inner) else []:
            yield (kind, name), body


def _has_named_bodies(node: Any) -> bool:
    return all(isinstance(v, (dict, list)) for b in _bodies(node) for v in b.values())


def _base(name: str, body: Mapping[str, Any], scope: _Scope) -> Iterator[BaseImage]:
    if "source_ami" in body:
        ami = scope.resolve(body["source_ami"])
        yield BaseImage(name, ami=ami, unresolved=ami is None)
        return
    for spec in _bodies(body.get("source_ami_filter") or []):
        raw_filters = spec.get("filters") or {}
        filters: dict[str, str] = {}
        unresolved = not isinstance(raw_filters, dict)
        for key, value in dict(raw_filters).items() if isinstance(raw_filters, dict) else []:
            text = scope.resolve(value)
            unresolved |= text is None
            filters[str(key)] = text or str(value)
        owners: list[str] = []
        for owner in spec.get("owners") or []:
            text = scope.resolve(owner)
            unresolved |= text is None
            owners.append(text or str(owner))
        most_recent = spec.get("most_recent", False)
        if isinstance(most_recent, str):
            most_recent = scope.resolve(most_recent) == "true"
        yield BaseImage(
            name,
            filters=filters,
            owners=tuple(owners),
            most_recent=bool(most_recent),
            unresolved=unresolved,
        )


_SETTING = re.compile(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*=[ \t]*(.*)$", re.M)


def template_settings(path: Path) -> dict[str, str]:
    """Every ``name = value`` of a template (HCL2 and JSON: the value as JSON), at any depth;
    the last one wins. For advice about the template (which tags Packer puts on its
    resources, what it modifies before tagging); an unreadable template gives nothing."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else parse_hcl(path, text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TemplateError):
        return {}
    return _json_settings(doc)


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
