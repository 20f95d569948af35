"""Runtime configuration, validated once at start so a bad setting fails fast and names its field.

A deployment runs one or more *connections* (a Visma company paired with a Marketo instance). The
connection list comes from ``CONNECTIONS_CONFIG`` (a JSON file path or inline JSON); without it, one
connection is built from the single-connection environment variables that template.yaml sets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml_connector.validation import describe

VismaEntity = Literal["customer", "supplier", "contact"]
# \Z, not $: "$" also matches before a trailing newline, which would end up in the REST host name.
MUNCHKIN_PATTERN = re.compile(r"^\d{3}-[A-Z]{3}-\d{3}\Z")
LOOPBACK_HOSTS = {"localhost"}


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting."""


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VismaSettings(_Strict):
    secret_id: str = Field(min_length=1)
    base_url: str = "https://api.finance.visma.net"
    token_url: str = "https://connect.visma.com/connect/token"
    send_company_header: bool = True
    page_size: Annotated[int, Field(ge=1, le=10_000)] = 1000
    # Re-read this much before the watermark: covers clock skew and rows committed during a poll.
    overlap_seconds: Annotated[int, Field(ge=0, le=86_400)] = 300
    # Per-request timeout; a timed-out request is retried with backoff like a 5xx.
    request_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 60.0
    # Writes that become visible later than the overlap (a lagging app-server clock, a long transaction):
    # every sweep_interval_seconds one poll reads sweep_depth_seconds back instead (unchanged rows cost no message).
    sweep_interval_seconds: Annotated[int, Field(ge=1, le=7 * 86_400)] = 3600
    sweep_depth_seconds: Annotated[int, Field(ge=0, le=31 * 86_400)] = 86_400
    # The zone of Visma's naive timestamps (IANA name): used to read lastModifiedDateTime and to write its filter.
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (for example Europe/Oslo or UTC)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @field_validator("base_url", "token_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme == "https" or (scheme == "http" and is_loopback(value)):
            return value.rstrip("/")
        raise ValueError("must be an https:// URL (plain http is allowed only for loopback sandboxes)")


class MarketoSettings(_Strict):
    secret_id: str = Field(min_length=1)
    munchkin_id: str
    # Only for local sandboxes: a loopback URL that replaces https://{munchkin}.mktorest.com.
    endpoint_override: str | None = None
    # Our share of the instance's limits (100 calls / 20 s, 10 concurrent), held across all writers.
    calls_per_20s: Annotated[int, Field(ge=1, le=100)] = 50
    max_concurrency: Annotated[int, Field(ge=1, le=10)] = 5
    # The window calls_per_20s counts in: Marketo's 20 s. Only a time-dilated run lengthens it (the latency bench
    # at time scale k: k × 20 s, the sandbox's window too); a shorter one would overrun the instance's limit.
    window_seconds: Annotated[float, Field(ge=20.0, le=3600.0)] = 20.0

    @field_validator("munchkin_id")
    @classmethod
    def _munchkin(cls, value: str) -> str:
        if not MUNCHKIN_PATTERN.match(value):
            raise ValueError("must look like 123-ABC-456 (Admin > Integration > Munchkin)")
        return value

    @field_validator("endpoint_override")
    @classmethod
    def _loopback_only(cls, value: str | None) -> str | None:
        if value is not None and not is_loopback(value):
            raise ValueError("is allowed only for loopback sandbox URLs; real instances are reached by Munchkin ID")
        return value.rstrip("/") if value else value


class ConnectionConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    visma: VismaSettings
    marketo: MarketoSettings
    # Mapping file (JSON); relative paths are resolved against the connections file. None: the shipped default.
    mapping: str | None = None
    # Entities to poll; None: every entity the mapping has a section for.
    entities: tuple[VismaEntity, ...] | None = None
    # How often reference data (classes, credit terms, payment methods) is refreshed.
    reference_interval_minutes: Annotated[int, Field(ge=1)] = 1440
    # How often this connection is polled; None: on every schedule tick (ScheduleRate). At most a week.
    poll_interval_minutes: Annotated[int, Field(ge=1, le=10_080)] | None = None
    # Full reconcile (every record read, compared with what was written, deletions found): how often, in hours
    # (default weekly); 0 turns the schedule off (``ml-connector reconcile`` still runs one on demand).
    reconcile_interval_hours: Annotated[int, Field(ge=0, le=8_784)] = 168
    # During a reconcile, read each page's records back from Marketo and re-send those edited by hand there.
    drift_repair: bool = False


class RuntimeSettings(_Strict):
    state_table: str = Field(min_length=1)
    idempotency_table: str | None = None
    sync_queue_url: str | None = None
    connections: tuple[ConnectionConfig, ...] = Field(min_length=1)
    # Stop starting new work when less than this many seconds of the invocation remain.
    safety_margin_seconds: Annotated[float, Field(ge=0)] = 20.0
    job_ttl_days: Annotated[int, Field(ge=1)] = 14
    # The dispatcher's queue of poll work (one message per due connection) and the schedule's period in
    # minutes (None when ScheduleRate is not a rate() expression).
    poll_work_queue_url: str | None = None
    schedule_minutes: Annotated[int, Field(ge=1)] | None = None
    # How long a poll's lease on its connection lasts: longer than the poller's timeout (template.yaml).
    poll_lease_seconds: Annotated[int, Field(ge=60, le=3600)] = 330

    @field_validator("connections")
    @classmethod
    def _unique_ids(cls, value: tuple[ConnectionConfig, ...]) -> tuple[ConnectionConfig, ...]:
        seen: set[str] = set()
        for conn in value:
            if conn.id in seen:
                raise ValueError(f"duplicate connection id {conn.id!r}: each connection needs its own id "
                                 "(its watermarks, record state and quarantine are kept under it)")
            seen.add(conn.id)
        return value

    def connection(self, connection_id: str) -> ConnectionConfig:
        for conn in self.connections:
            if conn.id == connection_id:
                return conn
        raise ConfigError(f"CONNECTIONS_CONFIG: no connection named {connection_id!r}")


SSM_PREFIX = "ssm:"
SHIPPED_MAPPINGS = Path(__file__).resolve().parent / "mappings"


_ssm_providers: dict[str, Any] = {}
DEFAULT_REFRESH_SECONDS = 300


def refresh_seconds() -> int:
    """How long settings, connections documents, mappings and secrets are reused before being read again
    (``CONFIG_REFRESH_SECONDS``, default five minutes): a rotated secret or an edited document takes effect
    within this time, without a deploy."""
    raw = os.environ.get("CONFIG_REFRESH_SECONDS", "")
    try:
        value = int(raw) if raw else DEFAULT_REFRESH_SECONDS
    except ValueError:
        raise ConfigError(f"CONFIG_REFRESH_SECONDS: expected whole seconds, got {raw!r}") from None
    if value < 1:
        raise ConfigError("CONFIG_REFRESH_SECONDS: must be at least 1")
    return value


def read_document(source: str) -> str:
    """A config document: ``ssm:/name`` (SSM Parameter Store, cached ``refresh_seconds()``) or a file path."""
    if not source.startswith(SSM_PREFIX):
        return Path(source).read_text(encoding="utf-8")
    import boto3
    from aws_lambda_powertools.utilities import parameters

    # One provider (and cache) per endpoint, so local runs against a new emulator never reuse a stale client.
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint not in _ssm_providers:
        _ssm_providers[endpoint] = parameters.SSMProvider(boto3_client=boto3.client("ssm"))
    try:
        return str(_ssm_providers[endpoint].get(source[len(SSM_PREFIX):], max_age=refresh_seconds()))
    except parameters.exceptions.GetParameterError as exc:
        raise OSError(f"cannot read SSM parameter {source[len(SSM_PREFIX):]}: {exc}") from exc


def _connections_from_env(env: dict[str, str]) -> list[dict[str, Any]]:
    raw = env.get("CONNECTIONS_CONFIG", "").strip()
    if raw:
        inline = raw.startswith(("[", "{"))
        data = json.loads(raw if inline else read_document(raw))
        connections = data["connections"] if isinstance(data, dict) else data
        if not inline and not raw.startswith(SSM_PREFIX):
            base = Path(raw).resolve().parent
            for conn in connections:
                if isinstance(conn, dict) and conn.get("mapping") and not Path(conn["mapping"]).is_absolute():
                    conn["mapping"] = _beside(base, conn["mapping"])
        return list(connections)
    visma: dict[str, Any] = {"secret_id": env.get("VISMA_SECRET_ID", "")}
    for key, name in (("base_url", "VISMA_BASE_URL"), ("token_url", "VISMA_TOKEN_URL"),
                      ("request_timeout_seconds", "VISMA_REQUEST_TIMEOUT_SECONDS"),
                      ("sweep_interval_seconds", "VISMA_SWEEP_INTERVAL_SECONDS"),
                      ("sweep_depth_seconds", "VISMA_SWEEP_DEPTH_SECONDS"), ("time_zone", "VISMA_TIME_ZONE"),
                      ("page_size", "VISMA_PAGE_SIZE")):
        if env.get(name):
            visma[key] = env[name]
    if env.get("VISMA_SEND_COMPANY_HEADER"):
        visma["send_company_header"] = env["VISMA_SEND_COMPANY_HEADER"].lower() not in ("0", "false", "no")
    marketo = {"secret_id": env.get("MARKETO_SECRET_ID", ""), "munchkin_id": env.get("MARKETO_MUNCHKIN_ID", "")}
    if env.get("MARKETO_ENDPOINT_OVERRIDE"):
        marketo["endpoint_override"] = env["MARKETO_ENDPOINT_OVERRIDE"]
    for key, name in (("calls_per_20s", "MARKETO_CALLS_PER_20S"), ("max_concurrency", "MARKETO_MAX_CONCURRENCY"),
                      ("window_seconds", "MARKETO_WINDOW_SECONDS")):
        if env.get(name):
            marketo[key] = env[name]
    connection: dict[str, Any] = {"id": env.get("CONNECTION_ID", "default"), "visma": visma, "marketo": marketo}
    if env.get("MAPPING_FILE"):
        connection["mapping"] = env["MAPPING_FILE"]
    if env.get("RECONCILE_INTERVAL_HOURS"):
        connection["reconcile_interval_hours"] = env["RECONCILE_INTERVAL_HOURS"]
    if env.get("DRIFT_REPAIR"):
        connection["drift_repair"] = env["DRIFT_REPAIR"]
    return [connection]


def _beside(base: Path, mapping: str) -> str:
    """A relative mapping path is relative to the connections file, unless it names a shipped mapping
    that is not there."""
    candidate = base / mapping
    if not candidate.exists() and (SHIPPED_MAPPINGS / mapping).exists():
        return mapping
    return str(candidate)


RATE_EXPRESSION = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")


def schedule_minutes(expression: str) -> int | None:
    """The period of an EventBridge ``rate(...)`` expression in minutes; None for cron() or nothing."""
    match = RATE_EXPRESSION.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2)[0]]


def load_settings(env: dict[str, str] | None = None) -> RuntimeSettings:
    """Build and validate settings from the environment; raise ConfigError naming the bad field."""
    env = dict(os.environ if env is None else env)
    try:
        connections = _connections_from_env(env)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"CONNECTIONS_CONFIG: cannot read connection list ({exc})") from exc
    data: dict[str, Any] = {
        "state_table": env.get("STATE_TABLE", ""),
        "idempotency_table": env.get("IDEMPOTENCY_TABLE") or None,
        "sync_queue_url": env.get("SYNC_QUEUE_URL") or None,
        "connections": connections,
        "poll_work_queue_url": env.get("POLL_WORK_QUEUE_URL") or None,
        "schedule_minutes": schedule_minutes(env.get("SCHEDULE_RATE", "")),
    }
    for key, name in (("poll_lease_seconds", "POLL_LEASE_SECONDS"), ("safety_margin_seconds", "SAFETY_MARGIN_SECONDS")):
        if env.get(name):
            data[key] = env[name]
    try:
        settings = RuntimeSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from exc
    _check_intervals(settings)
    return settings


def _check_intervals(settings: RuntimeSettings) -> None:
    """A connection cannot be polled more often than the schedule ticks: say so rather than poll less often."""
    for index, conn in enumerate(settings.connections):
        interval, tick = conn.poll_interval_minutes, settings.schedule_minutes
        if interval is not None and tick is not None and interval < tick:
            raise ConfigError(f"invalid configuration: connections.{index}.poll_interval_minutes: {interval} is "
                              f"shorter than the schedule's {tick} minutes (ScheduleRate); polls start on its ticks")
