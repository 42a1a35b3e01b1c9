"""The spec reference (docs/reference/spec.md), generated from the composed JSON Schema.

    python -m immutable_sdk.spec.reference --write    # regenerate docs/reference/spec.md

The page documents the core keys and every built-in plugin's block, from the same schema that
validates specs, so the two cannot disagree: a test regenerates the page and compares it with
the committed file. Third-party plugins are left out (``autoload=False``): the page must not
depend on what happens to be installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .schema import composed_schema

HEADER = """# Spec reference

<!-- Generated from the composed JSON Schema by `python -m immutable_sdk.spec.reference --write`.
     Do not edit by hand: a test fails when this file and the schema disagree. -->

Every key a spec may contain, with its type and meaning, for the built-in plugins. Durations are
numbers of seconds or strings such as `30s`, `5m`, `2h`, or several units from the largest down
as Go and Terraform write them (`1h30m`, `90m30s`, `1d12h`; units `d`, `h`, `m`, `s`, `ms`), at
most a year; `duration (> 0)` may not be zero. Sizes are counts (`3`) or percentages from `0%` to
`100%`; `size (> 0)` may not be `0` or `0%`. A region is one that botocore knows in any
partition. Third-party plugins document their own blocks (`immutable-sdk schema` prints the
schema with every installed plugin, for editors).

Any value may take `${VAR}` or `${VAR:-default}` from the environment. `!secret VALUE` (YAML
tag) marks a value secret: it is redacted from all output; values under secret-like keys
(`db_password`, `api_token`) and `${VAR}`s with secret-like names (`${DB_PASSWORD}`) are secret
without it (see [Secrets](../operations.md#secrets)).
"""

FORMAT_WORDS = {
    "duration": "duration",
    "positive-duration": "duration (> 0)",
    "size": "size",
    "positive-size": "size (> 0)",
    "file": "file",
    "region": "region",
    "instance-type": "instance type",
    "regex": "regular expression",
}

PLUGIN_SECTIONS = (
    ("builder", "Image builders", "images.NAME", "builder"),
    ("strategy", "Strategies", "fleets.NAME.strategy", "type"),
    ("health", "Health checks", "fleets.NAME.health.checks[]", "type"),
    ("notifier", "Notifiers", "notifiers[]", "type"),
    ("analysis", "Analysis providers", "fleets.NAME.strategy.steps[].analysis", "type"),
)


def is_plugin_block(schema: Mapping[str, Any]) -> bool:
    """A block whose schema is the one of the plugin its discriminator names."""
    return "x-plugin" in schema or any(
        isinstance(a, Mapping) and "$ref" in a.get("then", {}) for a in schema.get("allOf", ())
    )


def type_of(schema: Mapping[str, Any]) -> str:
    """A short, readable type for a property's schema."""
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    fmt = schema.get("format")
    if fmt in FORMAT_WORDS:
        return FORMAT_WORDS[str(fmt)]
    if is_plugin_block(schema):
        return "mapping (a plugin block)"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(type_of(s) for s in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_word(k, schema) for k in kind)
    if isinstance(kind, str):
        return _word(kind, schema)
    return "any"


def _word(kind: str, schema: Mapping[str, Any]) -> str:
    if kind == "array":
        items = schema.get("items")
        return f"list of {type_of(items)}" if isinstance(items, Mapping) else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and "properties" not in schema:
            return f"mapping of name to {type_of(extra)}"
        return "mapping"
    return {"integer": "integer", "number": "number", "string": "string"}.get(kind, kind)


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(schema: Mapping[str, Any]) -> list[str]:
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    lines = ["| key | type | required | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        description = _escape(str(prop.get("description", "")))
        if "default" in prop:
            description += f" Default: `{json.dumps(prop['default'])}`."
        lines.append(
            f"| `{name}` | {type_of(prop)} | {'yes' if name in required else ''} | "
            f"{description.strip()} |"
        )
    return lines


def sections(path: str, schema: Mapping[str, Any], level: int) -> Iterator[str]:
    """A table for ``schema`` at ``path``, then one section per nested mapping of fixed keys."""
    if not schema.get("properties"):
        return
    yield f"{'#' * level} " + (f"`{path}`" if path else "Top level")
    yield ""
    if schema.get("description"):
        yield _escape(str(schema["description"]))
        yield ""
    yield from table(schema)
    yield ""
    for name, prop in schema["properties"].items():
        if not path and name == "defaults":
            continue  # the keys of fleets.NAME, documented there
        for child, sub in _nested(f"{path}.{name}" if path else name, prop):
            if is_plugin_block(sub):
                continue  # plugin blocks have sections of their own
            yield from sections(child, sub, min(level + 1, 4))


def _nested(path: str, prop: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if prop.get("properties"):
        yield path, prop
    items = prop.get("items")
    if isinstance(items, Mapping) and items.get("properties"):
        yield f"{path}[]", items
    extra = prop.get("additionalProperties")
    if isinstance(extra, Mapping) and extra.get("properties"):
        yield f"{path}.NAME", extra


def render(schema: Mapping[str, Any]) -> str:
    """The whole page for a composed schema."""
    out = [HEADER]
    top = {
        **schema,
        "description": "The keys of a spec file. `defaults` takes any key of "
        "`fleets.NAME` and applies it to every fleet that does not set it.",
    }
    out.extend(sections("", top, 2))
    defs: Mapping[str, Any] = schema.get("$defs", {})
    for kind, title, where, key in PLUGIN_SECTIONS:
        out += [f"## {title}", ""]
        names = sorted(n.split(".", 1)[1] for n in defs if n.split(".", 1)[0] == kind)
        if not names:
            out += ["None built in: install a plugin that adds one (see plugins.md).", ""]
            continue
        out += [f"Blocks at `{where}`, selected by `{key}:`.", ""]
        for name in names:
            plugin = dict(defs[f"{kind}.{name}"])
            plugin.pop("$id", None)
            out.extend(sections(name, plugin, 3))
    return "\n".join(out).rstrip() + "\n"


def generate() -> str:
    from ..plugins import load_plugins

    return render(composed_schema(load_plugins(autoload=False)))


DEFAULT_PATH = Path("docs") / "reference" / "spec.md"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = generate()
    if args[:1] == ["--write"]:
        path = Path(args[1]) if len(args) > 1 else DEFAULT_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
