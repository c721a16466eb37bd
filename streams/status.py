"""``custpulse status``: what the worker has built, read back from Redis and Kafka."""

from __future__ import annotations

from dataclasses import dataclass

from custpulse.settings import SOURCES, Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.streams.admin import check_redis, describe_topics


@dataclass(frozen=True)
class Overview:
    customers: int
    events_by_source: dict[str, int]
    sample: dict[str, dict[str, str]]

    @property
    def events_total(self) -> int:
        return sum(self.events_by_source.values())


def overview(settings: Settings, sample_size: int = 3) -> Overview:
    client = check_redis(settings)
    try:
        profiles = scan_profiles(client, settings)
    finally:
        client.close()
    by_source = {
        s: sum(int(p.get(f"events_{s}", 0)) for p in profiles.values()) for s in SOURCES
    }
    busiest = sorted(profiles, key=lambda u: (-int(profiles[u]["events_total"]), u))
    return Overview(len(profiles), by_source, {u: profiles[u] for u in busiest[:sample_size]})


def print_segments(settings: Settings, library_path: str | None = None) -> int:
    """The tag library (version, every rule with definition and criteria, cadence) and the
    current size of each segment (Redis sets ``<prefix>segment:<group>:<name>``)."""
    from custpulse.schemas.segments import load_library

    library = load_library(library_path or settings.segments)
    client = check_redis(settings)
    try:
        print(f"tag library version {library.version}")
        for name, group in library.groups.items():
            print(f"\n[{name}] {group.definition}  (cadence: {group.cadence})")
            for rule in group.rules:
                size = client.scard(settings.redis_key("segment", name, rule.name))
                print(f"  {rule.name:<14} {size:>8} customers  {rule.definition}")
                if rule.criteria is not None:
                    print(f"  {'':<14} {'':>18}  criteria: {_criteria_text(rule.criteria)}")
        print("\n[scores]")
        for score in library.scores:
            print(f"  {score.name}: {score.definition}")
        print(f"\n[tags] {library.tags.definition}")
        for rule in library.tags.rules:
            print(f"  {rule.name:<20} {rule.definition}")
            print(f"  {'':<20} criteria: {_criteria_text(rule.criteria)}")
    finally:
        client.close()
    return 0


def _criteria_text(node: object) -> str:
    """A readable one-line form of a criteria tree."""
    from custpulse.schemas import segments as seg

    if isinstance(node, seg.Condition):
        value = "" if node.op in ("is_null", "not_null") else f" {node.value}"
        return f"{node.field} {node.op}{value}"
    if isinstance(node, seg.AllOf | seg.AnyOf):
        joiner = " and " if isinstance(node, seg.AllOf) else " or "
        return "(" + joiner.join(_criteria_text(item) for item in node.items) + ")"
    if isinstance(node, seg.Persisted):
        return f"in {node.segment} for >= {node.for_days:g} days"
    return str(node)


def print_status(settings: Settings, sample_size: int = 3) -> int:
    view = overview(settings, sample_size)
    print(f"customers with a live profile: {view.customers}")
    print(f"events counted: {view.events_total}")
    for source, n in view.events_by_source.items():
        print(f"  {source:<10} {n:>8}")
    for user_id, fields in view.sample.items():
        print(f"profile {settings.redis_key('profile', user_id)}")
        for key, value in fields.items():
            print(f"  {key:<18} {value}")
    print("topics:")
    for info in describe_topics(settings):
        print(f"  {info.name:<44} partitions {info.partitions:>3}  messages {info.messages:>8}")
    return 0 if view.customers else 1


def model_status(settings: Settings) -> dict[str, object] | None:
    """The newest published churn model's status (``ChurnModel.status()`` plus when it was
    published and the examples offset it has learned up to), read from
    ``<prefix>churn-models`` (the record of truth); None before the first version."""
    import asyncio  # noqa: PLC0415

    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from custpulse.processors.churn_model import ChurnModel  # noqa: PLC0415
    from custpulse.state.churn_models import newest_message  # noqa: PLC0415
    from custpulse.streams.admin import kafka_unreachable  # noqa: PLC0415

    try:
        message = asyncio.run(newest_message(settings))
    except (KafkaError, OSError) as exc:
        raise kafka_unreachable(settings) from exc
    if message is None:
        return None
    status: dict[str, object] = dict(ChurnModel.from_snapshot(message["model"]).status())
    status["published_at"] = message["published_at"]
    status["examples_offset"] = message["offset"]
    return status


def print_model_status(settings: Settings, as_json: bool = False) -> int:
    """``custpulse model status [--json]``."""
    import json  # noqa: PLC0415

    status = model_status(settings)
    if as_json:
        print(json.dumps(status if status is not None else {"model_version": 0,
                                                             "labels_seen": 0,
                                                             "published": False}))
        return 0
    if status is None:
        print("no churn model published yet: run `custpulse worker --role trainer` beside "
              "the workers that label examples")
        return 0

    def number(value: object, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"  # type: ignore[str-format]

    print(f"churn model version {status['model_version']}, published {status['published_at']}")
    print(f"labels seen {status['labels_seen']} (positives share "
          f"{number(status['positives_share'])}), scoring "
          f"{'on' if status['scoring'] else 'off until ' + str(status['min_labels']) + ' labels'}")
    print(f"progressive ROC AUC {number(status['roc_auc'])}, log loss "
          f"{number(status['log_loss'])}")
    print("calibration (decile: examples, mean score, churned share):")
    for row in status["calibration"]:  # type: ignore[attr-defined]
        print(f"  {row['decile']}: {row['examples']}, {number(row['mean_score'])}, "
              f"{number(row['positive_share'])}")
    print("weights (of standardized features):")
    weights = status["weights"]
    for name, weight in sorted(weights.items(), key=lambda kv: -abs(kv[1])):  # type: ignore[attr-defined]
        print(f"  {name:<22} {weight:+.4f}")
    return 0


def print_profile(settings: Settings, user_id: str, as_json: bool = False) -> int:
    """``custpulse profile USER_ID``: one live profile as Redis holds it (masked, as the
    mirror wrote it), ``as_of`` (the event time its values refer to) first. Exit status 1
    with one sentence when there is none."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from custpulse.state.redis_mirror import decode_profile, profile_key  # noqa: PLC0415

    client = check_redis(settings)
    try:
        fields = decode_profile(client.hgetall(profile_key(settings, user_id)))
    finally:
        client.close()
    if not fields:
        print(f"custpulse: no live profile for user id {user_id!r} in Redis at "
              f"{settings.redis_url} (key {profile_key(settings, user_id)}); check the id "
              "and CUSTPULSE_REDIS_PREFIX.", file=sys.stderr)
        return 1
    first = [k for k in ("as_of", "updated_at", "version") if k in fields]
    ordered = {k: fields[k] for k in first + sorted(k for k in fields if k not in first)}
    if as_json:
        print(json.dumps({"user_id": user_id, **ordered}, ensure_ascii=False))
        return 0
    print(f"profile {user_id} as of {ordered.get('as_of', '?')}")
    for key, value in ordered.items():
        print(f"  {key:<24} {value}")
    return 0
