"""The JSON Schema of a spec: the core (docs/design.md, 3) composed with every plugin's schema.

A plugin block (an image, a fleet's ``strategy``, each of ``health.checks``) is validated by the
schema of the plugin its discriminator (``builder:`` or ``type:``) names, through ``if``/``then``
on the discriminator's value. Each plugin schema sits under ``$defs`` with its own ``$id``, so its
internal ``$ref``s keep working.

Conventions plugin schemas may use (the SDK checks them and words the messages, see
``formats``): ``"format": "duration"`` (``30s``, ``5m``, ``2h``, ``1h30m``; up to a year),
``"positive-duration"`` (the same, more than 0), ``"size"`` (``3``, ``25%``; at most 100%),
``"positive-size"`` (at least 1 or above 0%), ``"region"`` (an AWS region of any partition),
``"instance-type"`` (an EC2 instance type),
``"regex"`` (a regular expression that compiles), ``"file"`` (a path relative to the spec file
that names it; it must exist, and leaving the spec's folder is warned about), and
``"x-expect"``: the words that complete "expected ..." when a value does not match.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .analysis_schema import with_shared_keys

if TYPE_CHECKING:
    from ..plugins import Plugins

SCHEMA_ID = "https://immutable-sdk.dev/schema/spec-v1.json"
API_VERSION = "immutable-sdk/v1"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
REGION_PATTERN = r"^[a-z]{2,}(-[a-z]+)+-[0-9]+$"

DURATION: dict[str, Any] = {
    "type": ["string", "number"],
    "format": "duration",
    "x-expect": "a duration like '30s', '5m', '2h' or '1h30m'",
}
POSITIVE_DURATION: dict[str, Any] = {**DURATION, "format": "positive-duration"}
REGION: dict[str, Any] = {
    "type": "string",
    "pattern": REGION_PATTERN,
    "format": "region",
    "x-expect": "an AWS region like 'us-east-1'",
}
DYNAMODB_TABLE_PATTERN = r"^[A-Za-z0-9_.-]{3,255}$"
INSTANCE_PROFILE_PATTERN = (
    r"^(arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[\w+=,.@/-]{1,128}|[\w+=,.@-]{1,128})$"
)
MAX_CAPACITY = 2_147_483_647  # the Auto Scaling API's integers

# Keys of an image block that the SDK itself reads, whatever the builder.
IMAGE_CORE_KEYS: dict[str, Any] = {
    "builder": {"type": "string", "description": "The builder plugin that makes this image."},
    "regions": {
        "type": "array",
        "items": REGION,
        "description": "Regions to copy the image to; the spec's region is always included.",
    },
    "retain": {
        "type": "integer",
        "minimum": 1,
        "description": "How many artifacts to keep; older unused ones may be garbage-collected.",
    },
}


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _duration(description: str, *, positive: bool = False) -> dict[str, Any]:
    return {**(POSITIVE_DURATION if positive else DURATION), "description": description}


_SLOT = {
    "type": "object",
    "required": ["target_group"],
    "additionalProperties": False,
    "properties": {
        "target_group": {
            "type": "string",
            "description": "The slot's target group (name or ARN); its Auto Scaling group "
            "registers there.",
        },
        "load_balancer": {
            "type": "string",
            "description": "The slot's load balancer (name or ARN) that the slot's record "
            "points at (default: the load balancer of the target group).",
        },
    },
}

_TRAFFIC = {
    "type": "object",
    "additionalProperties": False,
    "description": "Two long-lived slots behind weighted DNS; releases alternate between them.",
    "properties": {
        "route53": {
            "type": "object",
            "required": ["zone", "record"],
            "additionalProperties": False,
            "properties": {
                "zone": {"type": "string", "description": "The hosted zone's name or id."},
                "record": {"type": "string", "description": "The weighted record's name."},
                "ttl": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 2147483647,
                    "description": "Record TTL in seconds (default 60). Every bake after a "
                    "traffic shift waits it out first, and a slot is retired only once it has "
                    "passed: clients move as their DNS caches expire.",
                },
                "alias": {
                    "type": "boolean",
                    "description": "Alias A records to the slots' load balancers (default "
                    "true), or CNAME records to their DNS names with the TTL (false).",
                },
            },
        },
        "slots": {
            "type": "object",
            "required": ["blue", "green"],
            "additionalProperties": False,
            "properties": {"blue": _SLOT, "green": _SLOT},
        },
    },
}


_PATTERNS = {"type": "array", "items": {"type": "string"}, "minItems": 1}

_WAVE = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "description": "A group of fleets rolled out after the previous wave finished and baked.",
    "properties": {
        "name": {"type": "string", "description": "The wave's name (shown by plan)."},
        "fleets": {
            **_PATTERNS,
            "description": "Fleet names or glob patterns ('web-*', '*'; default '*'). A fleet "
            "belongs to the first wave that selects it.",
        },
        "regions": {
            **_PATTERNS,
            "description": "Region names or glob patterns (default '*'): the wave takes the "
            "selected fleets in these regions.",
        },
        "bake": _duration("After the wave changed fleets, watch their health this long."),
        "max_regions_in_flight": {
            "type": "integer",
            "minimum": 1,
            "description": "Regions with rollouts running at once within the wave (default 1).",
        },
        "stop_on_failure": {
            "type": "boolean",
            "description": "A failure in this wave stops every later wave (default true).",
        },
    },
}


def _fleet_properties(strategy: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": {"type": "string", "description": "The key of the image under `images`."},
        "regions": {
            "type": "array",
            "items": REGION,
            "minItems": 1,
            "description": "The regions the fleet deploys to (default: the spec's `region`); "
            "in each it has its own group, release and state, named `fleet@region` outside "
            "the spec's region. Its image is made available in every one of them.",
        },
        "instance_type": {
            "type": "string",
            "format": "instance-type",
            "description": "EC2 instance type (t3.small), one the installed botocore knows.",
        },
        "capacity": {
            "type": "object",
            "required": ["min", "max"],
            "additionalProperties": False,
            "description": "Auto Scaling group sizes; desired defaults to min.",
            "properties": {
                "min": {"type": "integer", "minimum": 0, "maximum": MAX_CAPACITY},
                "desired": {
                    "oneOf": [
                        {"type": "integer", "minimum": 0, "maximum": MAX_CAPACITY},
                        {"const": "managed"},
                    ],
                    "description": "A count, or `managed`: scaling policies own the desired "
                    "capacity; plan, drift and apply leave it alone (within min and max) and "
                    "rollouts size their batches from the group's live desired capacity.",
                },
                "max": {"type": "integer", "minimum": 0, "maximum": MAX_CAPACITY},
                "target_tracking": {
                    "type": "array",
                    "description": "Target-tracking scaling policies kept on the group (needs "
                    "`desired: managed`); apply creates, updates and removes them.",
                    "items": {
                        "type": "object",
                        "required": ["name", "metric", "target"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9_.-]{1,200}$",
                                "description": "Unique per fleet; the policy is named "
                                "`immutable-sdk-NAME` on the group.",
                            },
                            "metric": {
                                "enum": ["cpu", "network-in", "network-out"],
                                "description": "The group's average CPU utilization, "
                                "network in or network out (bytes).",
                            },
                            "target": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "description": "The value the policy keeps the metric at.",
                            },
                            "disable_scale_in": {
                                "type": "boolean",
                                "description": "Only scale out (default false).",
                            },
                            "warmup": _duration("Estimated instance warm-up (default: none)."),
                        },
                    },
                },
            },
        },
        "subnets": _strings("Subnet ids or Name tags."),
        "security_groups": _strings("Security group ids, names or Name tags."),
        "user_data": {
            "type": "string",
            "format": "file",
            "description": "A file with the instances' user data, relative to this spec file.",
        },
        "load_balancer": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "target_groups": _strings(
                    "Target group ARNs or names (a name: at most 32 letters, digits and '-')."
                )
            },
            "description": "Target groups the fleet's Auto Scaling group registers with.",
        },
        "traffic": _TRAFFIC,
        "strategy": strategy,
        "health": {
            "type": "object",
            "additionalProperties": False,
            "description": "The health gate every rollout step must pass.",
            "properties": {
                "timeout": _duration("How long a gate may take (default 10m).", positive=True),
                "interval": _duration("Time between polls of a gate (default 10s).", positive=True),
                "grace": _duration("Time after launch before checks count (default 0)."),
                "checks": {"type": "array", "items": check, "description": "Health checks."},
            },
        },
        "rollback": {
            "type": "object",
            "additionalProperties": False,
            "description": "What a failed rollout does.",
            "properties": {
                "automatic": {"type": "boolean", "description": "Roll back on failure."}
            },
        },
        "key_name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "description": "EC2 key pair name.",
        },
        "iam_instance_profile": {
            "type": "string",
            "pattern": INSTANCE_PROFILE_PATTERN,
            "x-expect": "an instance profile name (1 to 128 letters, digits and '+=,.@_-') or "
            "ARN (arn:aws:iam::ACCOUNT:instance-profile/NAME)",
            "description": "Instance profile name/ARN.",
        },
        "security": {
            "type": "object",
            "additionalProperties": False,
            "description": "Instance hardening: IMDSv2, volume encryption, public IPs.",
            "properties": {
                "imdsv2": {"enum": ["required", "optional"], "description": "IMDSv2 tokens."},
                "encrypt_volumes": {"type": "boolean", "description": "Encrypt EBS volumes."},
                "public_ip": {"type": "boolean", "description": "Give instances public IPs."},
            },
        },
        "max_lifetime": _duration("Instances older than this count as drift.", positive=True),
        "depends_on": {**_strings("Fleets to roll out before this one."), "uniqueItems": True},
        "tags": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Extra tags on every resource of the fleet: at most 46 (AWS allows "
            "50 per resource, the SDK adds up to 4 of its own); keys of 1 to 128 characters, "
            "not starting with `aws:` or `immutable-sdk:`, values of at most 256; letters, "
            "digits, spaces and `_ . : / = + - @` only.",
        },
    }


def _plugin_block(
    key: str, kind: str, entries: list[Any], description: str, *, editor: bool, base: str = ""
) -> dict[str, Any]:
    """A block validated by the schema of the plugin that ``key`` names.

    For editors, ``if``/``then`` per plugin; for validation, the ``x-plugin`` keyword (see
    ``validate``) that looks the schema up by name instead of trying every plugin in turn.
    """
    discriminator: dict[str, Any] = {"type": "string", "description": description}
    block: dict[str, Any] = {
        "type": "object",
        "required": [key],
        "properties": {key: discriminator},
        "description": description,
    }
    refs = {e.name: f"{base}#/$defs/{_def_name(kind, e.name)}" for e in entries}
    if editor:
        if refs:  # empty lists are not valid schemas (no notifier may be installed)
            discriminator["enum"] = list(refs)
            block["allOf"] = [
                {"if": {"properties": {key: {"const": n}}, "required": [key]}, "then": {"$ref": r}}
                for n, r in refs.items()
            ]
    else:
        block["x-plugin"] = {"key": key, "schemas": refs}
    return block


def _def_name(kind: str, name: str) -> str:
    return f"{kind}.{name}"


def _plugin_schema(
    kind: str, name: str, schema: Mapping[str, Any], key: str, core: Mapping[str, Any]
) -> dict[str, Any]:
    """A plugin's schema, closed and given its discriminator and the core keys it shares."""
    out = copy.deepcopy(dict(schema))
    out.setdefault("$id", f"urn:immutable-sdk:{kind}:{name}")
    out.setdefault("type", "object")
    props = out.setdefault("properties", {})
    for k, v in core.items():
        props.setdefault(k, v)
    props[key] = {**props.get(key, {}), "const": name}
    if "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["additionalProperties"] = False
    return out


def _embed_blocks(schema: Any, blocks: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace each ``{"x-plugin-block": KIND, ...}`` in a plugin's schema with the block that
    the registry of KIND validates (a canary strategy's ``analysis`` steps)."""
    if isinstance(schema, dict):
        kind = schema.get("x-plugin-block")
        if isinstance(kind, str) and kind in blocks:
            rest = {k: v for k, v in schema.items() if k != "x-plugin-block"}
            return {**copy.deepcopy(dict(blocks[kind])), **rest}
        return {k: _embed_blocks(v, blocks) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_embed_blocks(v, blocks) for v in schema]
    return schema


def build_schema(plugins: Plugins, *, editor: bool) -> dict[str, Any]:
    """The whole spec's schema. ``editor=True`` also lists the known plugin names as enums."""
    builders = list(plugins.builders)
    strategies = list(plugins.strategies)
    checks = list(plugins.health_checks)
    image = _plugin_block("builder", "builder", builders, "The builder plugin.", editor=editor)
    image["properties"].update({k: v for k, v in IMAGE_CORE_KEYS.items() if k != "builder"})
    strategy = _plugin_block("type", "strategy", strategies, "The strategy.", editor=editor)
    check = _plugin_block("type", "health", checks, "The health check.", editor=editor)
    notifiers = list(plugins.notifiers)
    notifier = _plugin_block("type", "notifier", notifiers, "The notifier.", editor=editor)
    providers = list(plugins.analysis_providers)
    # Embedded in other plugins' schemas (with ids of their own): refs name the root's id.
    blocks = {
        "analysis": _plugin_block(
            "type", "analysis", providers, "The analysis provider.", editor=editor, base=SCHEMA_ID
        )
    }
    defs: dict[str, Any] = {}
    for kind, key, entries, core in (
        ("builder", "builder", builders, IMAGE_CORE_KEYS),
        ("strategy", "type", strategies, {}),
        ("health", "type", checks, {}),
        ("notifier", "type", notifiers, {}),
        ("analysis", "type", providers, {}),
    ):
        for e in entries:
            own = with_shared_keys(e.schema) if kind == "analysis" else e.schema
            out = _plugin_schema(kind, e.name, own, key, core)
            defs[_def_name(kind, e.name)] = _embed_blocks(out, blocks)
    fleet = {
        "type": "object",
        "required": ["image", "instance_type", "capacity"],
        "additionalProperties": False,
        "properties": _fleet_properties(strategy, check),
    }
    loose = {"type": "object"}
    defaults = {
        "type": "object",
        "additionalProperties": False,
        "description": "Fleet settings that apply to every fleet (a fleet's own win).",
        "properties": _fleet_properties(loose, loose),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "immutable-sdk spec",
        "type": "object",
        "required": ["apiVersion", "name", "region"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": API_VERSION, "description": "The spec format's version."},
            "name": {
                "type": "string",
                "description": "The project: used in tags, resource names and state keys. "
                "Lowercase letters, digits and '-'; at most 39 characters, and at most 40 "
                "together with any fleet's name (the Auto Scaling group and launch template "
                "names are `{project}-{fleet}`).",
            },
            "region": {
                **REGION,
                "description": "The AWS region: images are built there, fleets deploy there "
                "unless they list `regions`, and a DynamoDB state table lives there unless "
                "`state.region` says otherwise.",
            },
            "state": {
                "type": "object",
                "additionalProperties": False,
                "description": "Where releases, rollouts and locks are kept.",
                "properties": {
                    "backend": {"enum": ["local", "dynamodb"], "description": "State backend."},
                    "path": {"type": "string", "description": "local: the SQLite file."},
                    "table": {
                        "type": "string",
                        "pattern": DYNAMODB_TABLE_PATTERN,
                        "x-expect": "a DynamoDB table name: 3 to 255 letters, digits, '_', "
                        "'-' or '.'",
                        "description": "dynamodb: the table.",
                    },
                    "region": {**REGION, "description": "dynamodb: region."},
                },
                "if": {"properties": {"backend": {"const": "dynamodb"}}, "required": ["backend"]},
                "then": {"required": ["table"]},
            },
            "images": {
                "type": ["object", "null"],
                "additionalProperties": image,
                "description": "Golden image definitions, by name.",
            },
            "defaults": defaults,
            "waves": {
                "type": "array",
                "items": _WAVE,
                "description": "Ordered waves of fleets and regions (default: one wave).",
            },
            "notifiers": {
                "type": "array",
                "items": notifier,
                "description": "Notifiers told about every rollout's lifecycle events.",
            },
            "fleets": {
                "type": ["object", "null"],
                "additionalProperties": fleet,
                "description": "Fleets of identical instances, by name.",
            },
        },
        "$defs": defs,
    }


def composed_schema(plugins: Plugins) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec with these plugins: what editors load."""
    return build_schema(plugins, editor=True)
