"""``ml-connector doctor``: the deployed (or local) stack checked end to end, each failing check with what
to do about it.

Checks: per connection, the credentials against both APIs (``check_connectivity``) and the mapping's fields
in Marketo (``check_against_marketo``, asked now, not from a cache); the stack's schedule rule is enabled;
queue depth (for information) and an empty dead-letter queue; no alarm of the stack in ALARM.
"""

from __future__ import annotations

from typing import Any

import boto3

from ml_connector.config import ConnectionConfig
from ml_connector.deadline import NO_DEADLINE
from ml_connector.queues import SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.sync.mapping import MappingError, check_against_marketo, load_mapping
from ml_connector.usecases.check_connectivity import Check, check_connection


def check_deployment(runtime: Runtime, queues: SyncQueues, stack_name: str) -> list[Check]:
    checks: list[Check] = []
    for connection in runtime.connections():
        reached = check_connection(runtime, connection)
        checks.extend(reached)
        marketo_ok = any(c.ok and c.name.startswith("Marketo") for c in reached) and not any(
            not c.ok and c.name.startswith("Marketo") for c in reached)
        checks.append(_mapping(runtime, connection, marketo_ok))
    checks.append(_schedule(stack_name))
    checks.extend(_queues(queues))
    checks.append(_alarms(stack_name))
    return checks


def _mapping(runtime: Runtime, connection: ConnectionConfig, marketo_reached: bool) -> Check:
    origin = connection.mapping or "default"
    name = f"Marketo fields of mapping {origin}"
    if not marketo_reached:
        return Check(name=name, ok=False, connection=connection.id, detail="not checked: Marketo was not reached",
                     advice="fix the Marketo checks above first")
    try:
        mapping = load_mapping(connection.mapping)
        client = runtime.marketo_client(connection.id, NO_DEADLINE)
        targets = []
        for entity in runtime.entities(connection):
            section = mapping.for_entity(entity)
            if section is None:
                raise MappingError(f"mapping {origin}: no section for enabled entity {entity!r}")
            check_against_marketo(section, client.describe_target(section.target), origin)
            targets.append(f"{entity} → {section.target} ({len(section.fields)} fields)")
    except MappingError as exc:
        return Check(name=name, ok=False, connection=connection.id, detail=str(exc),
                     advice="create the missing fields in Marketo (Admin > Field Management, or the custom "
                            "object), or change the mapping (README, Mapping)")
    except Exception as exc:  # noqa: BLE001 - a describe that fails is a failed check, said why
        return Check(name=name, ok=False, connection=connection.id, detail=f"{type(exc).__name__}: {exc}",
                     advice="check that the Marketo API user may read the target objects")
    return Check(name=name, ok=True, connection=connection.id, detail="; ".join(targets))


def _schedule(stack_name: str) -> Check:
    name = "Schedule"
    cfn, events = boto3.client("cloudformation"), boto3.client("events")
    rules = [r["PhysicalResourceId"] for page in cfn.get_paginator("list_stack_resources").paginate(
             StackName=stack_name) for r in page["StackResourceSummaries"]
             if r.get("ResourceType") == "AWS::Events::Rule" and r.get("PhysicalResourceId")]
    if not rules:
        return Check(name=name, ok=False, detail=f"stack {stack_name} has no schedule rule",
                     advice="deploy the stack from template.yaml again")
    states = {rule: events.describe_rule(Name=rule)["State"] for rule in rules}
    off = [rule for rule, state in states.items() if state != "ENABLED"]
    if off:
        return Check(name=name, ok=False, detail=f"{', '.join(off)}: {', '.join(states[r] for r in off)}",
                     advice="polls run only when scheduled: once `ping` passes, deploy again with "
                            "--parameter-overrides ScheduleEnabled=true (sam deploy keeps it for later deploys)")
    return Check(name=name, ok=True, detail=f"{', '.join(rules)}: ENABLED")


def _queues(queues: SyncQueues) -> list[Check]:
    waiting, dead = queues.depth(), queues.depth(queues.dead_letter_url())
    checks = [Check(name="Sync queue", ok=True, detail=f"{waiting} message(s) waiting or in flight")]
    if dead:
        checks.append(Check(name="Dead-letter queue", ok=False, detail=f"{dead} message(s)",
                            advice="see the failed jobs with `ml-connector status`, fix the cause, then "
                                   "`ml-connector redrive`"))
    else:
        checks.append(Check(name="Dead-letter queue", ok=True, detail="empty"))
    return checks


def _alarms(stack_name: str) -> Check:
    prefix = f"{stack_name}-"
    firing: list[dict[str, Any]] = []
    for page in boto3.client("cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=prefix, StateValue="ALARM"):
        # CloudFormation names them {stack}-{LogicalId}-{suffix}; a logical id has no dash, so a longer
        # remainder belongs to another stack whose name starts with ours (stack "ml" vs "ml-connector").
        # The state is checked here as well: moto applies only the first of the two filters.
        firing.extend(a for a in page["MetricAlarms"] if a["AlarmName"][len(prefix):].count("-") <= 1
                      and a["StateValue"] == "ALARM")
    if firing:
        return Check(name="Alarms", ok=False, detail=f"in ALARM: {', '.join(a['AlarmName'] for a in firing)}",
                     advice=" | ".join(f"{a['AlarmName']}: {a.get('AlarmDescription') or 'see README, Operate'}"
                                       for a in firing))
    return Check(name="Alarms", ok=True, detail="none in ALARM")
