"""The ``packer`` builder: bakes an AMI with the real ``packer`` binary.

::

    images:
      web:
        builder: packer
        template: packer/web.pkr.hcl   # HCL2 (.pkr.hcl, .pkr.json) or legacy JSON (.json)
        vars: {app_version: "1.4.2"}
        timeout: 1h                    # default 1h; Packer is interrupted (and cleans up) after it

**The contract between the SDK and a template.** Packer runs from the template's folder as
``packer build -machine-readable -var NAME=VALUE... TEMPLATE`` (an argument list, no shell), with
``CHECKPOINT_DISABLE=1`` and the session's AWS credentials in its environment. Packer in HCL2 mode
refuses a ``-var`` the template does not declare, so the SDK passes each of its variables only
when the template declares it:

* ``region``: the image's first region (the spec's region);
* ``ec2_endpoint``: the overridden EC2 endpoint (``--sandbox``, ``AWS_ENDPOINT_URL``), for
  ``custom_endpoint_ec2 = var.ec2_endpoint`` (default ``""``: real AWS). When an endpoint is
  overridden a template that does not declare it is refused: it would bake against real AWS;
* ``communicator``: ``"none"`` when the endpoint is overridden (an emulator has no machine to SSH
  into); otherwise not passed, so the template's default (``ssh``) or the user's ``vars`` apply.
  A template skips its provisioners under ``none`` (see specs/examples/packer/web.pkr.hcl);
* ``immutable_sdk_tags`` (HCL2 only, ``map(string)``): the lineage tags (the project's among
  them), for ``run_tags``, ``run_volume_tags``, ``tags`` and ``snapshot_tags``: the policy of
  ``immutable-sdk iam-policy`` lets Packer act only on resources that carry the project's tag;
* ``immutable_sdk_project``: the project's name, for a JSON template's
  ``"run_tags": {"immutable-sdk:project": "{{user `immutable_sdk_project`}}"}`` (and the others).

Every key of the image's ``vars`` is passed and must be declared, or the build stops before
Packer runs, naming the variable. ``region``, ``ec2_endpoint``, ``immutable_sdk_tags`` and
``immutable_sdk_project`` belong to the SDK and cannot be set in ``vars``. Whatever the template
does with the tags, the SDK tags the AMI and its snapshots itself after the build, and copies the
AMI to the image's other regions.

**Digest** (content addressing): the builder's name and version, the template's bytes, the
``vars``, the bytes of every file the template references (rule in ``packer_template``:
``source``/``script``/``scripts``/... paths, with ``path.root``, variables and locals resolved;
one Packer computes otherwise counts as written), and **the base image**: every ``amazon-*``
source's ``source_ami``, or the AMI its ``source_ami_filter`` (filters, owners,
``most_recent``) finds now, looked up at plan time. A newer base image that matches the filter
(the upstream's security fixes) is then a new digest and a rebuild, never a silently stale
golden image. Not in it: the variables the SDK passes, the endpoint, Packer's own version.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from difflib import get_close_matches
from typing import Any

from immutable_sdk.plugin import (
    TAG_SOURCE_AMI,
    Artifact,
    BuilderFactory,
    BuildError,
    CheckContext,
    ConfigProblem,
    ImageSpec,
    PluginContext,
    Registry,
    hookimpl,
    parse_duration,
)

from .digest import canonical_digest, file_sha256, files_digest
from .lineage import IMAGE_PROPERTIES, find_artifact, finish_build, lineage_tags
from .packer_run import PackerNotFound, run_packer
from .packer_template import HCL2, BaseImage, PackerTemplate, TemplateError, load_template

NAME = "packer"
VERSION = "1"  # bump when the same inputs would bake a different image
DEFAULT_TIMEOUT = "1h"
SDK_VARS = ("region", "ec2_endpoint", "immutable_sdk_tags", "immutable_sdk_project")
INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt-get install -y packer; elsewhere see "
    "https://developer.hashicorp.com/packer/install) or set the image's `binary`"
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["builder", "template"],
    "additionalProperties": False,
    "properties": {
        "builder": {"const": NAME, "description": "Bake the image with Packer."},
        "template": {
            "type": "string",
            "format": "file",
            "description": "The Packer template (.pkr.hcl, .pkr.json or legacy .json), "
            "relative to the spec file.",
        },
        "vars": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Template variables (each must be declared by the template).",
        },
        "timeout": {
            "type": ["string", "number"],
            "format": "positive-duration",
            "description": "How long Packer may run before it is interrupted (default 1h).",
        },
        "binary": {
            "type": "string",
            "description": "The packer executable (default: `packer` on PATH).",
        },
        **IMAGE_PROPERTIES,
    },
}


def _var_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PackerBuilder:
    """A Builder for one image block (see the module docstring for the template contract)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.timeout = parse_duration(config.get("timeout", DEFAULT_TIMEOUT))
        self.binary = str(config.get("binary", "packer"))
        # base images looked up by this builder object (one plan or build): source -> AMI
        self._bases: dict[tuple[str, str], dict[str, str]] = {}

    def _template(self, image: ImageSpec) -> PackerTemplate:
        values = {k: _var_text(v) for k, v in dict(image.config.get("vars") or {}).items()}
        values.setdefault("region", image.regions[0])  # what the SDK passes
        try:
            template = load_template(image.base_dir / str(image.config["template"]), values)
        except TemplateError as exc:
            raise BuildError(image.name, f"template: {exc}") from exc
        user_vars = dict(image.config.get("vars") or {})
        for name in sorted(user_vars):
            if name in SDK_VARS:
                raise BuildError(
                    image.name,
                    f"{image.location}: vars.{name}: set by immutable-sdk; remove it from vars",
                )
            if name not in template.variables:
                declared = ", ".join(sorted(template.variables)) or "none"
                raise BuildError(
                    image.name,
                    f"{image.location}: vars.{name}: the template {template.path.name} declares "
                    f"no variable {name!r} (declared: {declared})",
                )
        return template

    def _digest(self, image: ImageSpec, template: PackerTemplate, ctx: PluginContext) -> str:
        user_vars = dict(image.config.get("vars") or {})
        inputs: dict[str, Any] = {
            "builder": NAME,
            "version": VERSION,
            "template": {"kind": template.kind, "sha256": file_sha256(template.path)},
            "vars": {k: _var_text(v) for k, v in user_vars.items()},
            "files": files_digest(template.folder, template.references),
        }
        if template.unresolved:  # paths Packer computes: their text, at least
            inputs["computed_files"] = list(template.unresolved)
        if template.bases:
            inputs["base"] = self.bases(image, template, ctx)
        return canonical_digest(inputs)

    def bases(
        self, image: ImageSpec, template: PackerTemplate, ctx: PluginContext
    ) -> dict[str, str]:
        """Each ``amazon-*`` source -> the AMI it starts from now (looked up once per
        builder object): a literal ``source_ami``, or the newest match of its filter."""
        key = (str(template.path), image.regions[0])
        if key not in self._bases:
            self._bases[key] = {
                base.source: self._resolve(image, base, ctx) for base in template.bases
            }
        return self._bases[key]

    def _resolve(self, image: ImageSpec, base: BaseImage, ctx: PluginContext) -> str:
        if base.ami is not None:
            return base.ami
        if base.unresolved or not base.filters:
            # A filter Packer computes (a function, a data source): its text is all we know.
            return "unresolved:" + json.dumps(base.to_dict(), sort_keys=True)
        region = image.regions[0]
        request: dict[str, Any] = {
            "Filters": [{"Name": k, "Values": [v]} for k, v in sorted(base.filters.items())]
        }
        if base.owners:
            request["Owners"] = list(base.owners)
        # An AWS error here becomes AwsError where the engine asked (plan, build).
        found = ctx.client("ec2", region=region).describe_images(**request)["Images"]
        if not found:
            what = ", ".join(f"{k}={v}" for k, v in sorted(base.filters.items()))
            owners = f" owned by {', '.join(base.owners)}" if base.owners else ""
            raise BuildError(
                image.name,
                f"no AMI in {region} matches the source_ami_filter of {base.source} "
                f"({what}{owners}); Packer could not start from it either",
            )
        newest = max(found, key=lambda i: (str(i.get("CreationDate", "")), str(i["ImageId"])))
        return str(newest["ImageId"])

    def base_image(self, image: ImageSpec, ctx: PluginContext) -> str | None:
        """The base AMI(s) a build would start from now (None: the template names none)."""
        template = self._template(image)
        if not template.bases:
            return None
        return ", ".join(sorted(set(self.bases(image, template, ctx).values())))

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        return self._digest(image, self._template(image), ctx)

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        return find_artifact(image, ctx, digest=self.digest(image, ctx), builder=NAME)

    def variables(
        self,
        image: ImageSpec,
        ctx: PluginContext,
        template: PackerTemplate,
        tags: Mapping[str, str],
    ) -> dict[str, str]:
        """The ``-var``s for this template: the user's ``vars`` and the SDK's declared ones."""
        declared = template.variables
        values = {k: _var_text(v) for k, v in dict(image.config.get("vars") or {}).items()}
        endpoint = ctx.endpoint_url
        if endpoint and "ec2_endpoint" not in declared:
            raise BuildError(
                image.name,
                f"the AWS endpoint is overridden ({endpoint}) but the template "
                f"{template.path.name} declares no variable 'ec2_endpoint', so Packer would bake "
                "against real AWS; declare it and set custom_endpoint_ec2 = var.ec2_endpoint",
            )
        sdk: dict[str, str] = {"region": image.regions[0], "immutable_sdk_project": ctx.project}
        if endpoint:
            sdk["ec2_endpoint"] = endpoint
            sdk["communicator"] = "none"
        if template.kind == HCL2:
            sdk["immutable_sdk_tags"] = json.dumps(dict(tags), sort_keys=True)
        values.update({k: v for k, v in sdk.items() if k in declared})
        return values

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        template = self._template(image)
        digest = self._digest(image, template, ctx)
        binary = shutil.which(self.binary)
        if binary is None:
            raise BuildError(
                image.name, f"the packer binary {self.binary!r} was not found; " + INSTALL_HINT
            )
        tags = lineage_tags(image, ctx, digest=digest, builder=NAME)
        argv = [binary, "build", "-machine-readable"]
        for name, value in sorted(self.variables(image, ctx, template, tags).items()):
            argv += ["-var", f"{name}={value}"]
        argv.append(template.path.name)
        env = {**os.environ, "CHECKPOINT_DISABLE": "1", **ctx.credentials()}
        try:
            run = run_packer(
                argv,
                cwd=template.folder,
                env=env,
                timeout=self.timeout,
                on_line=lambda line: ctx.emit("build.output", image=image.name, line=line),
            )
        except PackerNotFound:
            raise BuildError(image.name, f"cannot run {binary}; " + INSTALL_HINT) from None
        out = run.output
        if run.timed_out:
            raise BuildError(
                image.name,
                f"packer did not finish within {self.timeout:g}s and was interrupted",
                output=list(out.tail),
            )
        if run.returncode != 0:
            raise BuildError(
                image.name,
                f"packer build failed (exit {run.returncode}): {out.summary()}",
                output=list(out.tail),
            )
        if not out.amis:
            raise BuildError(
                image.name,
                "packer succeeded but reported no AMI (does the template use an amazon builder?)",
                output=list(out.tail),
            )
        if out.source_ami:
            tags[TAG_SOURCE_AMI] = out.source_ami
        return finish_build(image, ctx, digest=digest, builder=NAME, amis=out.amis, tags=tags)


def _factory(config: Mapping[str, Any]) -> PackerBuilder:
    return PackerBuilder(config)


def check(config: Mapping[str, Any], context: CheckContext) -> Iterator[ConfigProblem]:
    """What a build would refuse, found without Packer: vars the SDK sets, a template that
    cannot be read, vars the template does not declare (the same rules as ``_template``)."""
    user_vars = config.get("vars") or {}
    for name in sorted(user_vars):
        if name in SDK_VARS:
            yield ConfigProblem(("vars", name), f"{name!r} is set by immutable-sdk; remove it")
    path = context.base_dir / os.path.expanduser(str(config["template"]))
    if not path.is_file():
        return  # reported as a missing file
    try:
        template = load_template(path)
    except TemplateError as exc:
        yield ConfigProblem(("template",), f"cannot read the template: {exc}")
        return
    declared = ", ".join(sorted(template.variables)) or "none"
    for name in sorted(user_vars):
        if name not in SDK_VARS and name not in template.variables:
            close = get_close_matches(name, sorted(template.variables), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            yield ConfigProblem(
                ("vars", name),
                f"the template {template.path.name} declares no variable {name!r} "
                f"(declared: {declared}){hint}",
            )


@hookimpl
def immutable_sdk_add_builders(registry: Registry[BuilderFactory]) -> None:
    registry.add(
        NAME,
        _factory,
        schema=SCHEMA,
        description="Bake an AMI with the packer binary (HCL2 or JSON template).",
        check=check,
    )
