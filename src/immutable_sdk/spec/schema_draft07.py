"""The spec's JSON Schema for editors: draft-07, the draft yaml-language-server validates with.

yaml-language-server (VS Code's YAML extension, Neovim, Helix, ...) validates with ajv's
draft-07 support; its draft 2019-09/2020-12 support was added once and reverted (issues
redhat-developer/yaml-language-server#856 and #1112). The SDK's own schema is 2020-12
(``schema.composed_schema``); this module rewrites it into the draft-07 equivalent:
``$defs`` become ``definitions``, ``dependentRequired``/``dependentSchemas`` become
``dependencies``, a ``$ref`` with siblings (ignored beside ``$ref`` in draft-07) is wrapped in
``allOf``, custom formats become patterns an editor can check, ``x-`` keywords and nested
``$id`` go. What it accepts is the same: a test validates the examples with both.
"""

from __future__ import annotations

from typing import Any

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# A duration an editor can check without the SDK's format: 90, 30s, 1.5h, 1h30m.
# ${VAR} and ${VAR:-default}: interpolated by the SDK when it loads the spec.
DURATION_PATTERN = (
    r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)?|(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?"
    r"|\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\})\s*$"
)


def draft07(schema: dict[str, Any]) -> dict[str, Any]:
    """The draft-07 form of a 2020-12 spec schema (see the module's docstring)."""
    out: dict[str, Any] = _convert(schema, top=True)
    out["$schema"] = DRAFT_07
    fleet = out.get("properties", {}).get("fleets", {}).get("additionalProperties")
    if isinstance(fleet, dict) and "defaults" in out.get("properties", {}):
        # `defaults:` fills a fleet's keys before the SDK validates; an editor sees the
        # fleet alone and would call a key that defaults supply missing.
        fleet.pop("required", None)
    return out


def _convert(node: Any, *, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or (key == "$id" and not top):
            continue
        if key == "$defs":
            out["definitions"] = {k: _convert(v) for k, v in value.items()}
        elif key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v) for k, v in value.items()}
        elif key == "dependentRequired":
            out.setdefault("dependencies", {}).update(value)
        elif key == "dependentSchemas":
            out.setdefault("dependencies", {}).update({k: _convert(v) for k, v in value.items()})
        elif key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/definitions/")
        elif key == "format" and value in ("duration", "positive-duration"):
            out["pattern"] = DURATION_PATTERN  # "more than 0" is left to validate
        elif key == "format" and value == "file":
            continue  # a path: an editor cannot know where the spec file is
        else:
            out[key] = _convert(value)
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}, *out.get("allOf", [])]
    return out
