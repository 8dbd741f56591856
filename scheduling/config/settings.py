"""Typed settings: the models that `settings.toml` and ``PERIODIC_*`` variables must fit.

Every model forbids unknown keys, because a misspelt key that is silently ignored is a schedule
that silently never runs. Secrets are `SecretStr` and never appear in reprs or errors.
Loading (file, environment, error messages) lives in `scheduling.config.loading`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from scheduling.config.bounds import (
    MAX_JITTER,
    check_duration,
    check_instant,
    check_json_depth,
    definition_size,
    from_store,
    refuse_number,
)
from scheduling.config.durations import Duration, format_duration
from scheduling.config.secret_refs import secret_ref_problems
from scheduling.timing.cron import CronExpression
from scheduling.timing.solar import SolarEvent

ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z")
r"""Used with ``match``; ``\Z`` (not ``$``) so a trailing newline is refused."""
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
AUTO_EXPIRES_CAP = timedelta(hours=1)


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name like 'Europe/Berlin' or 'UTC'"
        ) from None
    return name


def _check_cron(text: str) -> str:
    CronExpression.parse(text)
    return text


def _check_module(name: str) -> str:
    if len(name) > 200 or not MODULE_NAME.match(name):
        raise ValueError(f"{name!r} is not a dotted Python module name like 'acme.tasks'")
    return name


def _instant_in_range(value: datetime, info: ValidationInfo) -> datetime:
    return value if from_store(info) else check_instant(value)


ZoneName = Annotated[str, AfterValidator(_check_zone)]
Instant = Annotated[
    AwareDatetime, BeforeValidator(refuse_number), AfterValidator(_instant_in_range)
]
"""An aware instant in the supported range (`scheduling.config.bounds`); numbers refused."""
DEFAULT_DEFINITION_SIZE = 64 * 1024
ModuleName = Annotated[str, AfterValidator(_check_module)]
CronText = Annotated[str, AfterValidator(_check_cron)]
CatchupPolicy = Literal["skip", "latest", "all"]
QueueType = Literal["classic", "quorum"]
NODE_SEPARATOR = ";"
"""Separates a cluster's node URLs in one string (the fail-over form kombu and Celery take)."""
OverlapPolicy = Literal["allow", "skip"]
SCHEDULE_KINDS = ("every", "cron", "at", "solar")
SOLAR_PLACE = ("latitude", "longitude")
"""The fields a `solar` entry needs besides the event, and that no other kind takes."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class AppSettings(StrictModel):
    timezone: ZoneName = "UTC"
    database_url: SecretStr = SecretStr("sqlite:///var/periodic.db")
    environment: Literal["development", "production"] = "production"
    """Only ``development`` accepts the token that ``nox -s serve`` writes under var/."""
    secret_key: SecretStr | None = None
    """Signs the dashboard's session cookie; required in production (serve makes one in dev)."""
    imports: list[ModuleName] = Field(default_factory=list, max_length=200)
    """Task modules every process imports before the schedule is checked (Celery's word)."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message, entry/slot/task id)."""
    max_definition_size: int = Field(default=DEFAULT_DEFINITION_SIZE, ge=1024, le=16 * 2**20)
    """Bytes of JSON an entry's args, kwargs and description may take together."""


class BrokerSettings(StrictModel):
    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672//")
    """One node, or the nodes of a cluster: a TOML list, or one string with the node URLs
    separated by ``;`` (handy in ``PERIODIC_BROKER__URL``; a JSON list works there too). Kept as
    the ``;``-joined string that kombu and Celery take for fail-over; `node_urls` splits it."""
    confirm_publish: bool = True
    heartbeat: Duration = timedelta(seconds=30)
    connect_timeout: Duration = timedelta(seconds=4)
    publish_timeout: Duration = timedelta(seconds=5)

    @field_validator("url", mode="before")
    @classmethod
    def _nodes(cls, value: Any) -> Any:
        # Messages never quote the value: it holds the broker password.
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("a list of node URLs must be valid JSON") from None
        if isinstance(value, list | tuple):
            nodes = [n.get_secret_value() if isinstance(n, SecretStr) else n for n in value]
            if not nodes or not all(isinstance(node, str) for node in nodes):
                raise ValueError("expected a URL or a non-empty list of node URLs")
            value = NODE_SEPARATOR.join(node.strip() for node in nodes)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            for index, node in enumerate(value.split(NODE_SEPARATOR)):
                if "://" not in node:
                    raise ValueError(
                        f"node {index + 1} is not a URL like 'amqp://user:password@host:5672/vhost'"
                    )
        return value

    @property
    def node_urls(self) -> list[str]:
        """The URL of every node, in the order given (secrets: never log them unsanitised)."""
        return node_urls(self.url.get_secret_value())


def node_urls(url: str) -> list[str]:
    """Split a ``;``-joined broker URL into its nodes' URLs."""
    return [node.strip() for node in url.split(NODE_SEPARATOR) if node.strip()]


class QueueSettings(StrictModel):
    type: QueueType = "classic"
    """``quorum``: replicated on a RabbitMQ cluster (Raft), with a broker-side delivery limit.
    Comes first so that the fields after it can be checked against it."""
    priority: int = Field(default=5, ge=0, le=9)
    """Rank of the queue (9 = most urgent); the message priority when `max_priority` is set."""
    default: bool = False
    max_priority: int | None = Field(default=None, ge=1, le=255)
    message_ttl: Duration | None = None

    @field_validator("max_priority")
    @classmethod
    def _quorum_has_no_priorities(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("type") == "quorum":
            raise ValueError(
                "a quorum queue cannot honour message priorities on RabbitMQ 3.x; remove "
                "max_priority (Periodic already gives each priority its own queue) or use "
                'type = "classic"'
            )
        return value


class BeatSettings(StrictModel):
    scheduler: Literal["static", "database"] = "database"
    sync_interval: Duration = timedelta(seconds=1)
    lease_ttl: Duration = timedelta(seconds=10)
    max_catchup: int = Field(default=100, ge=0)
    schedule_file: str = "var/celerybeat-schedule"
    lag_alert: Duration = timedelta(seconds=30)
    """Readiness fails when the leader's dispatch lag exceeds this."""
    max_backfill: int = Field(default=1000, ge=1)
    """The most slots one backfill may dispatch; a larger window is refused (422)."""

    @model_validator(mode="after")
    def _positive(self) -> BeatSettings:
        if self.sync_interval <= timedelta(0):
            raise ValueError("sync_interval must be greater than 0s")
        if self.lease_ttl < timedelta(seconds=1):
            raise ValueError("lease_ttl must be at least 1s")
        return self


class MetricsSettings(StrictModel):
    entry_labels: bool = True
    """False drops the ``entry`` label from every series: one series per queue, not per entry,
    for schedules too large to keep a series per entry in Prometheus."""


class ApiToken(StrictModel):
    name: str = Field(min_length=1)
    secret: SecretStr
    scope: Literal["read", "write"]

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("a token secret must be at least 16 characters")
        return value


class ApiSettings(StrictModel):
    tokens: list[ApiToken] = []
    max_body_size: int = Field(default=2**20, ge=4096, le=64 * 2**20)
    """Bytes a request body may take; a larger one is refused with 413 before it is read."""


class SmtpSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "periodic@localhost"
    timeout: Duration = timedelta(seconds=10)


class WebhookSettings(StrictModel):
    allowed_hosts: list[str] = []


class TaskTimeLimits(StrictModel):
    """`[worker.time_limits."<task name>"]`: limits of one task, overriding the worker's."""

    soft: Duration | None = None
    """SoftTimeLimitExceeded is raised inside the task, which may clean up."""
    hard: Duration | None = None
    """The pool process running the task is killed."""

    @model_validator(mode="after")
    def _soft_before_hard(self) -> TaskTimeLimits:
        if self.soft is None and self.hard is None:
            raise ValueError("set soft, hard or both")
        for name, value in (("soft", self.soft), ("hard", self.hard)):
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name} must be greater than 0s")
        if self.soft is not None and self.hard is not None and self.soft >= self.hard:
            raise ValueError("soft must be shorter than hard")
        return self


class WorkerSettings(StrictModel):
    soft_time_limit: Duration = timedelta(minutes=5)
    time_limit: Duration = timedelta(minutes=10)
    max_retries: int = Field(default=5, ge=0)
    retry_backoff: Duration = timedelta(seconds=2)
    retry_backoff_max: Duration = timedelta(minutes=5)
    max_deliveries: int = Field(default=5, ge=1)
    time_limits: dict[str, TaskTimeLimits] = {}
    """Per-task limits by task name; a task not listed gets the two above."""
    secrets_file: str | None = None
    """``NAME=value`` lines that ``{"$secret": "NAME"}`` arguments resolve from (worker only)."""

    @model_validator(mode="after")
    def _limits_in_order(self) -> WorkerSettings:
        if self.soft_time_limit >= self.time_limit:
            raise ValueError("soft_time_limit must be shorter than time_limit")
        for task, limits in self.time_limits.items():
            soft = limits.soft or self.soft_time_limit
            hard = limits.hard or self.time_limit
            if soft >= hard:
                raise ValueError(
                    f"time_limits.{task!r}: the soft limit ({format_duration(soft)}) must be "
                    f"shorter than the hard limit ({format_duration(hard)}; worker.time_limit "
                    "applies when hard is not set)"
                )
        return self


class ScheduleEntry(StrictModel):
    """One `[schedule.<name>]` table. Exactly one of `every`, `cron`, `at`, `solar` says when.

    `solar` names an event as Celery's solar schedule does (`sunset`, `dawn_civil`, ...) and
    needs `latitude` and `longitude` (degrees, north and east positive).
    """

    task: str = Field(min_length=1)
    every: Duration | None = None
    cron: CronText | None = None
    at: Instant | None = None
    solar: SolarEvent | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    timezone: ZoneName | None = None
    queue: str | None = None
    args: list[JsonValue] = []
    kwargs: dict[str, JsonValue] = {}
    catchup: CatchupPolicy = "latest"
    misfire_grace: Duration | None = None
    overlap: OverlapPolicy = "allow"
    jitter: Duration = timedelta(0)
    expires: Literal["auto", "never"] | Duration = "auto"
    start: Instant | None = None
    end: Instant | None = None
    max_runs: int | None = Field(default=None, ge=1, le=2**31 - 1)
    enabled: bool = True
    description: str = ""

    @field_validator("every")
    @classmethod
    def _every_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        return value

    @field_validator("every", "misfire_grace", "expires")
    @classmethod
    def _duration_bounded(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, timedelta) and not from_store(info):
            check_duration(value)
        return value

    @field_validator("jitter")
    @classmethod
    def _jitter_bounded(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        return value if from_store(info) else check_duration(value, MAX_JITTER)

    @field_validator("args", "kwargs")
    @classmethod
    def _shallow(cls, value: Any, info: ValidationInfo) -> Any:
        return value if from_store(info) else check_json_depth(value)

    def size(self) -> int:
        """Bytes of JSON the arguments and description take (see `max_definition_size`)."""
        return definition_size(self.args, self.kwargs, self.description)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ScheduleEntry:
        given = [kind for kind in SCHEDULE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"exactly one of every, cron, at, solar is required (found: {found})")
        place = [name for name in SOLAR_PLACE if getattr(self, name) is not None]
        if self.solar is not None and len(place) != len(SOLAR_PLACE):
            raise ValueError("solar needs latitude and longitude (degrees, north and east > 0)")
        if self.solar is None and place:
            raise ValueError(f"{' and '.join(place)} only go with solar")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.every is not None and self.jitter >= self.every:
            raise ValueError("jitter must be shorter than every")
        return self

    @property
    def kind(self) -> Literal["every", "cron", "at", "solar"]:
        if self.every is not None:
            return "every"
        if self.solar is not None:
            return "solar"
        return "cron" if self.cron is not None else "at"


class Settings(BaseSettings):
    """The whole configuration. Build it with `scheduling.config.loading.load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="PERIODIC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    app: AppSettings = AppSettings()
    broker: BrokerSettings = BrokerSettings()
    queues: dict[str, QueueSettings] = {
        "high": QueueSettings(priority=9),
        "default": QueueSettings(priority=5, default=True),
        "low": QueueSettings(priority=1),
    }
    routes: dict[str, str] = {}
    beat: BeatSettings = BeatSettings()
    api: ApiSettings = ApiSettings()
    smtp: SmtpSettings = SmtpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    worker: WorkerSettings = WorkerSettings()
    metrics: MetricsSettings = MetricsSettings()
    schedule: dict[str, ScheduleEntry] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML document arrives as init kwargs (read by `load_settings`, which owns the
        # file and its error messages); the environment beats it, key by key.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _definitions_fit(self) -> Settings:
        limit = self.app.max_definition_size
        for name, entry in self.schedule.items():
            refs = secret_ref_problems(entry.args, "args") + secret_ref_problems(
                entry.kwargs, "kwargs"
            )
            for where, message in refs:
                raise ValueError(f"schedule.{name}.{where}: {message}")
            if entry.size() > limit:
                raise ValueError(
                    f"schedule.{name}: args, kwargs and description take {entry.size()} bytes "
                    f"of JSON, more than [app].max_definition_size ({limit})"
                )
        return self

    @property
    def default_queue(self) -> str:
        marked = [name for name, queue in self.queues.items() if queue.default]
        return marked[0] if marked else next(iter(self.queues))

    def entry_zone(self, entry: ScheduleEntry) -> ZoneInfo:
        return ZoneInfo(entry.timezone or self.app.timezone)
