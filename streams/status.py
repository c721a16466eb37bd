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
