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
