"""Fixes to the embedded emulator where moto differs from AWS in what the SDK needs.

* moto (5.2) does not implement EC2 ``DeleteLaunchTemplateVersions``, which the SDK calls so
  that a failed release leaves no launch template version behind. It is added here with AWS's
  semantics: versions are removed (describes and launches no longer see them), numbers are never
  reused, and the default version cannot be deleted.
* moto's ``CreateLaunchTemplateVersion`` stores ``UserData`` unparsed, and an Auto Scaling group
  launching from such a version then fails inside moto (HTTP 500). The version's user data is
  parsed here as ``CreateLaunchTemplate`` already does.
* A request sent again (its first answer lost) must meet AWS's answer, not moto's: a second
  ``DetachInstances`` of instances no longer in the group is refused (``ValidationError``; moto
  lowered desired capacity again), ``DeregisterTargets`` of a target that is not registered
  succeeds (moto answered ``InvalidTarget``), and ``CreateLaunchTemplateVersion`` with a
  ``ClientToken`` it has seen on that template answers with the version it made then (moto
  ignored the token and made a second version).
* ``CreateImage`` makes an EBS-backed AMI on AWS (it works only on EBS-backed instances); moto
  gave it the root device type ``standard``, which Packer's ``amazon-ebs`` builder refuses as a
  source: a golden image could not be the base of another build (a base image pipeline).
  Here the AMI gets the root device type and name of the instance's own image.
* moto's DynamoDB checks a write's condition and then writes, with nothing between two server
  threads: two conditional writes (or transactions) at once could both pass and one overwrite
  the other. DynamoDB makes each write, and each transaction, atomic; here the backend's writes
  run one at a time, so the state store's conditional writes mean on the emulator what they
  mean on AWS. moto also deep-copied each whole table a transaction writes to, to undo it if
  it is cancelled: a transaction cost time in proportion to the table (30 ms and growing for a
  state table of a few hundred journal items, every write of the emulator waiting meanwhile),
  which turned a Step Functions rollout's many workers into a queue. Here a transaction keeps
  a copy of the items it writes only, and a cancelled one puts back just those. In the same
  way a ``Query`` of a table (not of an index) sorted every item of the table to pick those of
  one partition; here it reads that partition only.
* moto answers ``GetMetricData`` with a percentile statistic (``p99``) by failing with HTTP 500
  once data exist (it has no value for the statistic and cannot serialize None). Here a
  percentile is the nearest-rank percentile of the single values published in the period; a
  period with statistic sets only gives their maximum (AWS derives percentiles only from
  values; the maximum is the conservative stand-in, as the canary judge combines them).

* moto's ``GetMetricData`` computes only ``Sum``, ``Average``, ``Minimum``, ``Maximum`` and
  ``SampleCount``: any other statistic (a percentile such as ``p99``) came back as a missing
  value and the server answered HTTP 500 once data existed. Percentiles (``p99``, ``p99.9``) and
  trimmed means (``tm99``) are computed here as CloudWatch defines them, over the raw values
  (statistic sets count only where CloudWatch can tell their values: one sample, or min equal
  to max); a period with no such value has no data point, as on AWS. Other extended statistics
  are refused with a ``ValidationError`` that says so, not a server error.

* A terminated instance gives its private address back to its subnet, as on AWS (moto kept it
  until the server was reset: a sandbox ran out of addresses after about 250 launches in a
  /24 and a rollback then failed half-way). A subnet that is really full answers
  ``InsufficientFreeAddressesInSubnet``, AWS's error, rather than HTTP 500.
* moto hands out a subnet's private addresses from a generator that two server threads may
  resume at once (``ValueError: generator already executing``, HTTP 500): fifty fleets created
  in parallel in one subnet hit it. Addresses are handed out one at a time here.

* moto runs state machines (once enabled) but forgets nothing about a task token whose task
  timed out: ``SendTaskHeartbeat`` and ``SendTaskSuccess`` with it succeed, where AWS answers
  ``TaskTimedOut``. A worker that heartbeats a token before it ticks then ticked for a task
  nobody waits for any more. Here a token's task that ended without an answer (timeout,
  heartbeat timeout, the execution stopped) refuses later answers with ``TaskTimedOut``.
  moto also answered a refused token (``TaskTimedOut``, ``TaskDoesNotExist``, ``InvalidToken``)
  with HTTP 500, and dropped ``SendTaskFailure``'s ``cause``: both as AWS does here. And a
  heartbeat sent as soon as the task's message arrived was refused (moto sets the task's
  heartbeat up after sending its message); it is taken here, as on AWS. ``StopExecution`` of
  an execution waiting inside a ``Map`` ended it ``FAILED`` (``States.Runtime``), where AWS
  says ``ABORTED``: here too.

* moto's reset (``/moto-api/reset``) drops every account's backends, but method caches keyed
  by the object kept them alive, each with its whole emulated account (an EC2 backend alone
  holds some 4,000 objects for its default images): ``Subnet._base_avail_ip_iterator`` (an
  unbounded ``cache``: every subnet ever made, and its backend),
  ``AccountSpecificBackend._generate_regions`` (the last 128 backends) and
  ``Subscription.private_key`` (the last 128 SNS subscriptions). A long test session grew by
  tens of MB a test, and slowed with its heap. Here a reset clears those caches too.

Production code is unchanged: it calls the same APIs on AWS.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.launch_templates import LaunchTemplate
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data
    from moto.elbv2.models import FakeTargetGroup

    original_get_version = LaunchTemplate.get_version
    original_create_version = LaunchTemplate.create_version

    def create_version(self: Any, data: dict[str, Any], description: str) -> Any:
        replay = getattr(self, "replay", None)
        if replay is not None:
            return replay
        if isinstance(data.get("UserData"), str):
            data = {**data, "UserData": parse_user_data(data["UserData"])}
        return original_create_version(self, data, description)

    def get_version(self: Any, num: Any) -> Any:
        version = original_get_version(self, num)
        if getattr(version, "deleted", False):
            raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
        return version

    original_create_version_call = LaunchTemplates.create_launch_template_version

    def create_launch_template_version(self: Any) -> Any:
        token = self._get_param("ClientToken")
        name = self._get_param("LaunchTemplateName")
        if not token or not name or name not in self.ec2_backend.launch_template_name_to_ids:
            return original_create_version_call(self)  # moto's own answer, errors included
        template = self.ec2_backend.get_launch_template_by_name(name)
        tokens: dict[str, int] = template.__dict__.setdefault("client_tokens", {})
        if token in tokens:  # replay: create_version hands back the version made then
            template.replay = original_get_version(template, tokens[token])
        try:
            answer = original_create_version_call(self)
        finally:
            template.replay = None
        tokens.setdefault(token, template.latest_version_number)
        return answer

    original_describe = EC2Backend.describe_launch_template_versions

    def describe_versions(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = original_describe(self, *args, **kwargs)
        return [(t, v) for t, v in found if not getattr(v, "deleted", False)]

    def delete_launch_template_versions(self: Any) -> Any:
        name = self._get_param("LaunchTemplateName")
        template_id = self._get_param("LaunchTemplateId")
        numbers = [str(v) for v in self._get_param("Versions", [])]
        self.error_on_dryrun()
        if name:
            template = self.ec2_backend.get_launch_template_by_name(name)
        else:
            template = self.ec2_backend.get_launch_template(template_id)
        ok, failed = [], []
        ident = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name}
        for number in numbers:
            try:
                version = original_get_version(template, int(number))
            except (ValueError, InvalidLaunchTemplateVersionNotFound):
                version = None
            if version is None or getattr(version, "deleted", False):
                code, message = "launchTemplateVersionDoesNotExist", "version does not exist"
            elif template.is_default(version):
                code, message = "launchTemplateVersionIsDefaultVersion", "cannot delete default"
            else:
                version.deleted = True  # type: ignore[attr-defined]
                ok.append({**ident, "VersionNumber": int(number)})
                continue
            failed.append(
                {
                    **ident,
                    "VersionNumber": int(number) if number.isdigit() else 0,
                    "ResponseError": {"Code": code, "Message": message},
                }
            )
        return ActionResult(
            {
                "SuccessfullyDeletedLaunchTemplateVersions": ok,
                "UnsuccessfullyDeletedLaunchTemplateVersions": failed,
            }
        )

    original_detach = AutoScalingBackend.detach_instances

    def detach_instances(
        self: Any, group_name: str, instance_ids: list[str], should_decrement: bool
    ) -> Any:
        group = self.autoscaling_groups[group_name]
        members = {s.instance.id for s in group.instance_states}
        for instance_id in instance_ids:
            if instance_id not in members:
                raise ValidationError(
                    f"The instance {instance_id} is not part of Auto Scaling group {group_name}."
                )
        return original_detach(self, group_name, instance_ids, should_decrement)

    def deregister(self: Any, targets: list[dict[str, Any]]) -> None:
        for target in targets:
            t = self.targets.pop(target["Id"], None)
            if t is not None:
                self.deregistered_targets[target["Id"]] = t

    AutoScalingBackend.detach_instances = detach_instances  # type: ignore[method-assign]
    FakeTargetGroup.deregister = deregister  # type: ignore[method-assign]
    LaunchTemplate.get_version = get_version  # type: ignore[method-assign]
    LaunchTemplate.create_version = create_version  # type: ignore[method-assign]
    EC2Backend.describe_launch_template_versions = describe_versions  # type: ignore[method-assign]
    LaunchTemplates.delete_launch_template_versions = (  # type: ignore[attr-defined]
        delete_launch_template_versions
    )
    LaunchTemplates.create_launch_template_version = (  # type: ignore[method-assign]
        create_launch_template_version
    )
    _ebs_backed_create_image(EC2Backend)
    _transactions_undo_their_items()
    _queries_read_one_partition()
    _serialize_dynamodb_writes()
    _extended_statistics()
    _addresses_freed_on_termination()
    _serialize_subnet_addresses()
    _task_tokens_time_out()
    _reset_forgets_old_accounts()
    _installed = True


def _reset_forgets_old_accounts() -> None:
    from moto.core.base_backend import AccountSpecificBackend, BackendDict
    from moto.ec2.models.subnets import Subnet
    from moto.sns.models import Subscription

    caches = [
        AccountSpecificBackend._generate_regions,
        Subnet._base_avail_ip_iterator,
        Subscription.private_key,
    ]
    original = BackendDict.reset.__func__  # type: ignore[attr-defined]

    @classmethod  # type: ignore[misc]
    def reset(cls: Any) -> None:
        original(cls)
        for method in caches:  # every object they were keyed by is gone with the reset
            method.cache_clear()

    BackendDict.reset = reset  # type: ignore[method-assign,assignment]


def _addresses_freed_on_termination() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instances import Instance
    from moto.ec2.models.subnets import Subnet

    original_terminate = Instance.terminate
    original_next_ip = Subnet.get_available_subnet_ip
    original_prep_nics = Instance.prep_nics

    def prep_nics(self: Any, nic_spec: Any, *args: Any, **kwargs: Any) -> Any:
        # An interface the launch creates goes with the instance unless the request says
        # otherwise (AWS); moto kept it, and its address, unless DeleteOnTermination was true.
        answer = original_prep_nics(self, nic_spec, *args, **kwargs)
        kept = {
            int(n.get("DeviceIndex", 0))
            for n in nic_spec or ()
            if n.get("NetworkInterfaceId") or n.get("DeleteOnTermination") in (False, "false")
        }
        for index, nic in self.nics.items():
            if index not in kept:
                nic.delete_on_termination = True
        return answer

    def terminate(self: Any) -> Any:
        previous = original_terminate(self)
        subnet_id = self.subnet_id
        if subnet_id and self._private_ips:
            subnet = self.ec2_backend.get_subnet(subnet_id)
            for ip in self._private_ips:
                if subnet._subnet_ips.get(ip) is self:  # not another's since
                    subnet.del_subnet_ip(ip)
            self._private_ips = set()  # so moto's own clean-up (on collection) frees nothing
        return previous

    def get_available_subnet_ip(self: Any, instance: Any) -> str:
        try:
            return str(original_next_ip(self, instance))
        except StopIteration:
            raise EC2ClientError(
                "InsufficientFreeAddressesInSubnet",
                f"There are not enough free addresses in subnet '{self.id}' to satisfy the "
                "requested number of instances.",
            ) from None

    Instance.terminate = terminate  # type: ignore[method-assign]
    Instance.prep_nics = prep_nics  # type: ignore[method-assign]
    Subnet.get_available_subnet_ip = get_available_subnet_ip  # type: ignore[method-assign]


_BASIC = frozenset({"Sum", "Average", "Minimum", "Maximum", "SampleCount"})
_EXTENDED = re.compile(r"(p|tm)(\d{1,2}(?:\.\d+)?|100)")


def _extended_statistics() -> None:
    from moto.cloudwatch.exceptions import ValidationError
    from moto.cloudwatch.models import CloudWatchBackend, Statistics

    original_statistic = Statistics.get_statistics_for_type
    original_get_metric_data = CloudWatchBackend.get_metric_data

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if stat in _BASIC:
            return original_statistic(self, stat)
        found = _EXTENDED.fullmatch(stat)
        if found is None:
            raise ValidationError(
                f"The statistic {stat!r} is not supported by the sandbox's emulator "
                "(it computes Sum, Average, Minimum, Maximum, SampleCount, pNN and tmNN)"
            )
        values = list(self.metric_single_values_list)
        for aggregate in self.metric_aggregated_list:
            if aggregate.sample_count == 1 or aggregate.min == aggregate.max:
                values += [float(aggregate.min)] * max(1, int(aggregate.sample_count))
        return extended_statistic(found.group(1), float(found.group(2)), values)

    def get_metric_data(self: Any, *args: Any, **kwargs: Any) -> Any:
        results = original_get_metric_data(self, *args, **kwargs)
        for result in results:  # a period without a value has no data point, as on AWS
            pairs = [(v, t) for v, t in zip(result["values"], result["timestamps"], strict=False)]
            kept = [(v, t) for v, t in pairs if v is not None]
            if len(kept) != len(pairs):
                result["values"] = [v for v, _ in kept]
                result["timestamps"] = [t for _, t in kept]
        return results

    Statistics.get_statistics_for_type = get_statistics_for_type  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_data = get_metric_data  # type: ignore[method-assign]


def extended_statistic(kind: str, percent: float, values: list[float]) -> float | None:
    """``pNN`` (nearest rank) or ``tmNN`` (the mean of the values up to the NNth percentile)
    of ``values``, as CloudWatch defines them; None without values."""
    if not values or percent > 100:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    if kind == "p":
        return ordered[rank - 1]
    kept = ordered[:rank]
    return sum(kept) / len(kept)


def _ebs_backed_create_image(backend: Any) -> None:
    original = backend.create_image

    @functools.wraps(original)
    def create_image(self: Any, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        ami = original(self, instance_id, *args, **kwargs)
        source = self.amis.get(getattr(self.get_instance(instance_id), "image_id", ""))
        ami.root_device_type = "ebs"
        if source is not None:
            ami.root_device_name = source.root_device_name
        return ami

    backend.create_image = create_image


def _transactions_undo_their_items() -> None:
    """moto's ``transact_write_items`` with a copy of each item it writes instead of a copy of
    each table: the same checks, the same errors, the same writes."""
    import copy

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        if any(len(item) > 1 for item in transact_items):
            raise TransactWriteSingleOpException
        # (table, key) -> (table, hash, range, the item before, or None)
        before: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}

        def undo() -> None:
            for table, hash_value, range_value, item in before.values():
                if item is None:
                    table.delete_item(hash_value, range_value)
                elif range_value:
                    table.items[hash_value][range_value] = item
                else:
                    table.items[hash_value] = item

        errors: list[tuple[str | None, str | None, Any]] = []
        for item in transact_items:
            original_item = None
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                condition = op.get("ConditionExpression")
                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                table = self.get_table(table_name)
                if op_type == "Put":
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                unique = (str(table_name), str(dict(sorted(key.items()))))
                if unique in before:
                    raise MultipleTransactionsException()
                hash_value, range_value = self.get_keys_value(table, key)
                current = table.get_item(hash_value, range_value)
                before[unique] = (table, hash_value, range_value, copy.deepcopy(current))
                checked = get_filter_expression(condition, names, values) if condition else None
                if checked is not None and not checked.expr(current):
                    failure = op.get("ReturnValuesOnConditionCheckFailure")
                    if failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
                options = {
                    "condition_expression": condition,
                    "expression_attribute_names": names,
                    "expression_attribute_values": values,
                }
                if op_type == "Put":
                    self.put_item(table_name, op["Item"], **options)
                elif op_type == "Delete":
                    self.delete_item(table_name, key, **options)
                elif op_type == "Update":
                    self.update_item(
                        table_name, key, update_expression=op["UpdateExpression"], **options
                    )
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                undo()
                raise
            except ConditionalCheckFailed as e:
                errors.append(("ConditionalCheckFailed", str(e.message), original_item))
            except Exception as e:
                errors.append((type(e).__name__, str(e), original_item))
        if any(code is not None for code, _, _ in errors):
            undo()
            raise TransactionCanceledException(errors)

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _queries_read_one_partition() -> None:
    """moto's table ``query`` run over the queried partition's items only."""
    from moto.dynamodb.models.table import Table

    class Partition:
        """The table as ``query`` sees it, with ``all_items`` those of one partition."""

        def __init__(self, table: Any, hash_key: Any) -> None:
            self._table = table
            self._hash_key = hash_key

        def __getattr__(self, name: str) -> Any:
            return getattr(self._table, name)

        def all_items(self) -> list[Any]:
            found = self._table.items.get(self._hash_key)
            if found is None:
                return []
            if self._table.range_key_attr:
                return sorted(found.values(), key=lambda item: item.range_key)
            return [found]

    original = Table.query

    index_at = 6  # index_name's place after hash_key in Table.query's positional arguments

    @functools.wraps(original)
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index = args[index_at] if len(args) > index_at else kwargs.get("index_name")
        if hash_key is None or index:
            return original(self, hash_key, *args, **kwargs)
        return original(Partition(self, hash_key), hash_key, *args, **kwargs)  # type: ignore[arg-type]

    Table.query = query  # type: ignore[method-assign]


def _serialize_dynamodb_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # one for all backends: writes are short, and tests are small

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return write

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))


def _serialize_subnet_addresses() -> None:
    from moto.ec2.models.subnets import Subnet

    lock = threading.Lock()
    original = Subnet.get_available_subnet_ip

    @functools.wraps(original)
    def get_available_subnet_ip(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    Subnet.get_available_subnet_ip = get_available_subnet_ip  # type: ignore[method-assign]


def _task_tokens_time_out() -> None:
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackConsumerTimeout,
        CallbackEndpoint,
    )

    original = CallbackEndpoint.interrupt_all

    @functools.wraps(original)
    def interrupt_all(self: Any) -> None:
        # called once the task's outcome is known; no outcome: it timed out or was stopped
        if self.get_outcome() is None and self.consumer_error is None:
            self.report(CallbackConsumerTimeout())
        original(self)

    # moto sets a task's heartbeat timer up only after it sent the task's message: a worker
    # that heartbeats (or answers) as soon as it has the message found no timer, was refused
    # (InvalidToken) or went unheard, and the task then timed out with its answer in hand.
    # On AWS a live token takes heartbeats and answers from the start.
    def notify_heartbeat(self: Any) -> bool:
        if self._heartbeat_endpoint is not None:
            self._heartbeat_endpoint.notify()
        else:
            self._early_heartbeat = True
        return True

    original_setup = CallbackEndpoint.setup_heartbeat_endpoint

    @functools.wraps(original_setup)
    def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
        endpoint: Any = original_setup(self, heartbeat_seconds)
        if self.get_outcome() is not None or getattr(self, "_early_heartbeat", False):
            endpoint.notify()
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint  # type: ignore[method-assign]

    # moto made a task's token once and sent it again with every Retry of the task: the answer
    # of a worker that was given up on (its heartbeat timed out) then counted for the retry.
    # On AWS each attempt has its own token; here too.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback_task,
    )

    task = callback_task.StateTaskServiceCallback
    original_attempt = task._eval_execution

    @functools.wraps(original_attempt)
    def attempt(self: Any, env: Any) -> Any:
        context = env.states.context_object
        if (context.context_object_data.get("Task") or {}).get("Token"):
            env.callback_pool_manager.add(context.update_task_token())
        return original_attempt(self, env)

    task._eval_execution = attempt  # type: ignore[method-assign]

    CallbackEndpoint.interrupt_all = interrupt_all  # type: ignore[method-assign]
    CallbackEndpoint.notify_heartbeat = notify_heartbeat  # type: ignore[method-assign]
    _task_answers_refused_as_aws()
    _stopped_executions_abort()


def _stopped_executions_abort() -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend import execution as backend

    original_stop: Any = backend.Execution.stop
    original_reflect: Any = backend.BaseExecutionWorkerCommunication._reflect_execution_status

    @functools.wraps(original_stop)
    def stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._stop_requested = True
        return original_stop(self, *args, **kwargs)

    @functools.wraps(original_reflect)
    def reflect(self: Any) -> Any:
        result = original_reflect(self)
        if getattr(self.execution, "_stop_requested", False):
            self.execution.exec_status = ExecutionStatus.ABORTED
            self.execution.error = self.execution.cause = None
        return result

    backend.Execution.stop = stop  # type: ignore[method-assign]
    backend.BaseExecutionWorkerCommunication._reflect_execution_status = reflect  # type: ignore[method-assign]


def _task_answers_refused_as_aws() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
    )
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    def answer(backend: Any, token: str, act: Callable[[Any], Any]) -> None:
        # AWS: a token whose task ended without this answer is TaskTimedOut, an unknown one
        # InvalidToken (moto raised exceptions its server cannot send: HTTP 500)
        running = {id(e) for e in backend._get_executions(ExecutionStatus.RUNNING)}
        for execution in backend._get_executions():
            worker = getattr(execution, "exec_worker", None)
            endpoint = worker.env.callback_pool_manager.get(token) if worker else None
            if endpoint is None:
                continue
            if endpoint.consumer_error is not None or id(execution) not in running:
                raise JsonRESTError("TaskTimedOut", "Task Timed Out")
            act(endpoint)
            return
        raise JsonRESTError("InvalidToken", "Invalid Token")

    def send_task_heartbeat(self: Any, task_token: str) -> None:
        answer(self, task_token, lambda e: e.notify_heartbeat())

    def send_task_success(self: Any, task_token: str, outcome: str) -> None:
        done = CallbackOutcomeSuccess(callback_id=task_token, output=outcome)
        answer(self, task_token, lambda e: e.notify(outcome=done))

    def send_task_failure(
        self: Any, task_token: str, error: str | None = None, cause: str | None = None
    ) -> None:
        done = CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause)
        answer(self, task_token, lambda e: e.notify(outcome=done))

    StepFunctionsParserBackend.send_task_heartbeat = send_task_heartbeat  # type: ignore[method-assign,assignment]
    StepFunctionsParserBackend.send_task_success = send_task_success  # type: ignore[method-assign,assignment]
    StepFunctionsParserBackend.send_task_failure = send_task_failure  # type: ignore[method-assign,assignment]

    def response_failure(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = response_failure  # type: ignore[method-assign]
