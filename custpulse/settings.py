"""The one configuration object: frozen, read from the environment.

Names in the environment (the public contract, see docs/contract.md):

* ``KAFKA_BOOTSTRAP`` (default ``127.0.0.1:9092``) and ``REDIS_URL``
  (default ``redis://127.0.0.1:6379/0``), unprefixed so they match docker-compose.yml;
* everything else with the ``CUSTPULSE_`` prefix, e.g. ``CUSTPULSE_TOPIC_PREFIX``.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from custpulse.errors import ConfigError

MIN_SECRET_BYTES = 32
"""The shortest PII secret accepted (HMAC-SHA256 keys should be at least its output length)."""
DEV_PII_SECRET = "custpulse-development-secret-do-not-use-in-production"  # noqa: S105
"""The default PII token secret: the worker refuses it unless ``CUSTPULSE_ENV=dev``."""

SOURCES: tuple[str, ...] = ("customers", "behavior", "orders", "tickets")
"""The four raw input sources; each has its own topic ``<prefix><source>``."""


class Settings(BaseModel):
    """Frozen settings. Build with :func:`load_settings` to get readable errors.

    ``Settings(**values)`` takes ``values`` by field name and every other field from the
    environment (:func:`env_name`; names are matched without regard to case), else its
    default: what pydantic-settings' ``BaseSettings`` with the prefix ``CUSTPULSE_`` did, without
    its ~0.15 s of import at every command's start."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        environment = {name.upper(): value for name, value in os.environ.items()}
        out = dict(data)
        for name in cls.model_fields:
            variable = env_name(name)
            if name not in data and variable not in data and variable in environment:
                out[name] = environment[variable]
        return out

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "kafka_bootstrap"),
        description="host:port[,host:port] of the Kafka brokers.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="redis:// URL of the Redis that serves profiles.",
    )
    topic_prefix: str = Field("cp.", description="Prefix of every custpulse topic.")
    redis_prefix: str = Field("cp:", description="Prefix of every custpulse Redis key.")
    app_id: str = Field("custpulse", description="Faust app id = Kafka consumer group.")
    partitions: int = Field(4, ge=1, le=256, description="Partitions of topics we create.")
    replication_factor: int = Field(1, ge=1, le=16)
    source_tz: str = Field(
        "Asia/Shanghai", description="Zone in which naive source timestamps are read."
    )
    env: str = Field("prod", description="'dev' relaxes safety checks for local work.")
    log_level: str = Field("info", description="Worker log level: crit/error/warn/info/debug.")
    pii_secret: SecretStr = Field(
        SecretStr(DEV_PII_SECRET), description="Key of the HMAC-SHA256 tokens for PII joins."
    )
    pii_secret_file: str | None = Field(
        None, description="File holding the PII secret (wins over CUSTPULSE_PII_SECRET)."
    )
    pii_secret_version: int = Field(
        1, ge=1, le=9999,
        description="Version of the PII secret, written into every token (tok_v<version>_); "
                    "raise it with each new secret (docs/contract.md, rotation).",
    )
    segments: str | None = Field(
        None, description="YAML tag library replacing the shipped default."
    )
    campaigns: str | None = Field(
        None, description="YAML campaign triggers replacing the shipped default."
    )
    alerts_stream_maxlen: int = Field(
        100_000, ge=100, description="Approximate length bound of the Redis alert stream."
    )
    mapping: str | None = Field(
        None, description="YAML field mapping merged over the shipped defaults."
    )
    max_future_skew_s: float = Field(
        300.0, ge=0, description="Events later than now + this many seconds are rejected."
    )
    dedupe_max_ids: int = Field(
        5000, ge=10, description="Event ids remembered per customer for deduplication."
    )
    allowed_lateness_s: float = Field(
        0.0, ge=0, description="The watermark trails the latest event time by this much."
    )
    idle_clock: str = Field(
        "follow", description="'follow': the watermark moves with event time only; 'wall': "
        "it also follows wall-clock time minus the allowed lateness (live operation)."
    )
    idle_timeout_s: float = Field(
        30.0, gt=0, description="An input (raw topic partition) that delivered nothing for "
        "this many wall-clock seconds no longer holds the watermark back."
    )
    align_s: float = Field(
        1.0, ge=0, le=60, description="The ingest stage holds events back while an input that "
        "delivered within this many seconds may still send earlier ones (event-time merge)."
    )
    freshness_horizon_s: float = Field(
        86_400.0, ge=0, description="Segment moves whose event time is older than wall-clock "
        "time minus this many seconds are marked historical and send no campaign trigger."
    )
    session_timeout_s: float = Field(
        30.0, ge=6, le=300, description="Kafka group session timeout of the worker, seconds."
    )
    batch_max_records: int = Field(
        2000, ge=1, le=100_000, description="Raw records the ingest stage reads per poll; "
        "their input offsets are committed once the envelopes carrying them are acknowledged."
    )
    envelope_max_records: int = Field(
        500, ge=1, le=10_000, description="Records carried per envelope message on "
        "<prefix>events (also bounded to ENVELOPE_MAX_BYTES of JSON)."
    )
    store: str = Field(
        "memory://", description="Table store: 'memory://' or 'rocksdb://' (state larger "
        "than memory; kept under CUSTPULSE_DATA_DIR, rebuilt from changelogs when lost)."
    )
    data_dir: str = Field(
        ".custpulse-data", description="Folder for the worker's local table data."
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port; 0 = off.")
    shutdown_wait_s: float = Field(
        30.0, gt=0, description="At shutdown, seconds to wait for messages in flight to be "
        "announced (e.g. while Redis is down) before stopping without them (not committed: "
        "delivered again after the restart).")
    stall_timeout_s: float = Field(
        120.0, gt=0, description="Liveness: seconds an events partition of this worker may "
        "lag without its committed offset moving before /healthz/live fails.")
    role: str = Field(
        "all", description="What this worker process runs: 'all' (ingest stage and fold), "
        "'ingest' (raw topics -> <prefix>events only) or 'fold' (<prefix>events -> table, "
        "Redis, alerts only). Run one 'ingest' and one 'fold' process to use two cores. "
        "'trainer': the churn model's trainer alone (<prefix>churn-examples -> model versions)."
    )
    churn_min_labels: int = Field(
        200, ge=1, description="Labelled examples the churn model learns before it scores."
    )
    churn_publish_every: int = Field(
        500, ge=1, description="The trainer publishes a new model version after this many "
        "new examples (or after CUSTPULSE_CHURN_PUBLISH_INTERVAL_S with at least one)."
    )
    churn_publish_interval_s: float = Field(
        10.0, gt=0, description="Seconds after which learned examples are published as a "
        "model version even when fewer than CUSTPULSE_CHURN_PUBLISH_EVERY."
    )
    churn_horizon_days: float = Field(
        90.0, gt=0, le=3650, description="Days of event time without an order or any "
        "activity after which a customer counts as churned (the label of its snapshot)."
    )
    churn_threshold: float = Field(
        0.5, gt=0, lt=1, description="Churn probability from which a customer is in risk band "
        "'high' (entering or leaving it is an alert of group 'churn')."
    )
    churn_rescore_days: float = Field(
        7.0, ge=0, le=3650, description="A scored customer not yet churned is scored again "
        "this many days of event time after its last score, with or without events (0: only "
        "when the segment rules evaluate it; else at least 1/24, one hour)."
    )
    churn_dedupe_lookback: int = Field(
        100_000, ge=0, description="Examples before its restart point the trainer reads "
        "back (without learning them) to recognise re-sent examples after a restart."
    )

    @field_validator("churn_rescore_days")
    @classmethod
    def _rescore_not_tiny(cls, value: float) -> float:
        if 0 < value < 1 / 24:
            raise ValueError("must be 0 (off) or at least 1/24 day (one hour, the profile's "
                             "resolution)")
        return value

    @field_validator("source_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value not in {"memory://", "rocksdb://"}:
            raise ValueError("must be 'memory://' or 'rocksdb://'")
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in {"all", "ingest", "fold", "trainer"}:
            raise ValueError("must be 'all', 'ingest', 'fold' or 'trainer'")
        return value

    @field_validator("idle_clock")
    @classmethod
    def _known_clock(cls, value: str) -> str:
        if value not in {"follow", "wall"}:
            raise ValueError("must be 'follow' or 'wall'")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"crit", "error", "warn", "info", "debug"}:
            raise ValueError("must be one of crit, error, warn, info, debug")
        return value

    @field_validator("topic_prefix", "redis_prefix", "app_id")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be non-empty and contain no whitespace")
        return value

    def secret_bytes(self) -> bytes:
        """The PII token key: the secret file's content (stripped) if set, else the env value."""
        if self.pii_secret_file:
            try:
                with open(self.pii_secret_file, "rb") as handle:
                    secret = handle.read().strip()
            except OSError as exc:
                raise ConfigError(
                    f"Cannot read CUSTPULSE_PII_SECRET_FILE {self.pii_secret_file!r} "
                    f"({exc.strerror}): point it at a readable file holding the secret."
                ) from None
        else:
            secret = self.pii_secret.get_secret_value().encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"The PII secret is shorter than {MIN_SECRET_BYTES} bytes: set "
                "CUSTPULSE_PII_SECRET (or CUSTPULSE_PII_SECRET_FILE) to a long random value, "
                "e.g. `openssl rand -hex 32`."
            )
        return secret

    def uses_dev_secret(self) -> bool:
        return self.secret_bytes() == DEV_PII_SECRET.encode()

    @cached_property
    def zone(self) -> ZoneInfo:
        """The source zone as a ZoneInfo."""
        return ZoneInfo(self.source_tz)

    def topic(self, name: str) -> str:
        """Full topic name: ``topic("orders") == "cp.orders"`` with the default prefix."""
        return f"{self.topic_prefix}{name}"

    def source_topics(self) -> dict[str, str]:
        """Map source name -> raw input topic."""
        return {source: self.topic(source) for source in SOURCES}

    @property
    def events_topic(self) -> str:
        """Envelopes of canonical events and ticks, partitioned by user_id."""
        return self.topic("events")

    @property
    def ingest_group(self) -> str:
        """Consumer group (and client id) of the ingest stage on the raw topics."""
        return f"{self.app_id}-ingest"

    @property
    def clock_topic(self) -> str:
        """Ingest processes' reports on their inputs (one partition, compacted): the shared
        event-time watermark of the fold processes."""
        return self.topic("clock")

    @property
    def runs_ingest(self) -> bool:
        return self.role in ("all", "ingest")

    @property
    def runs_fold(self) -> bool:
        return self.role in ("all", "fold")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @property
    def churn_examples_topic(self) -> str:
        """Labelled churn examples (one partition: one trainer learns them in one order)."""
        return self.topic("churn-examples")

    @property
    def churn_models_topic(self) -> str:
        """Published churn model versions (one partition, compacted: the newest counts)."""
        return self.topic("churn-models")

    @property
    def segment_changes_topic(self) -> str:
        return self.topic("segment-changes")

    @property
    def campaign_triggers_topic(self) -> str:
        return self.topic("campaign-triggers")

    @property
    def ops_alerts_topic(self) -> str:
        return self.topic("ops-alerts")

    def internal_topics(self) -> list[str]:
        return [self.events_topic, self.deadletter_topic, self.segment_changes_topic,
                self.campaign_triggers_topic, self.ops_alerts_topic, self.clock_topic,
                self.churn_examples_topic, self.churn_models_topic]

    def redis_key(self, *parts: str) -> str:
        """``redis_key("profile", "U1") == "cp:profile:U1"`` with the default prefix."""
        return self.redis_prefix + ":".join(parts)


_UNPREFIXED = {"kafka_bootstrap": "KAFKA_BOOTSTRAP", "redis_url": "REDIS_URL"}


def env_name(field: str) -> str:
    """The environment variable that sets ``field``.

    >>> env_name("topic_prefix"), env_name("redis_url")
    ('CUSTPULSE_TOPIC_PREFIX', 'REDIS_URL')
    """
    if field in _UNPREFIXED or field in _UNPREFIXED.values():
        return _UNPREFIXED.get(field, field)
    return "CUSTPULSE_" + field.upper() if field else "settings"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and ``overrides``); one-sentence error if invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{env_name(str(err['loc'][0]) if err['loc'] else '')}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid configuration ({problems}); fix the environment variable "
            "(see docs/contract.md, 'Configuration')."
        ) from None
