"""Live profiles in Redis equal an independent pandas computation over the generated files,
as of each profile's own ``as_of``."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd
import redis

from custpulse.processors.profile import window_start
from custpulse.settings import SOURCES, Settings
from custpulse.state.redis_mirror import scan_profiles

from .conftest import WorkerProcess, run_cli, wait_drained

SH = "Asia/Shanghai"


def load(folder: Path) -> dict[str, pd.DataFrame]:
    frames = {s: pd.read_json(folder / f"{s}.jsonl", lines=True, dtype={"user_id": str})
              for s in SOURCES}
    frames["orders"]["t"] = pd.to_datetime(frames["orders"].order_time).dt.tz_localize(SH)
    frames["behavior"]["t"] = pd.to_datetime(frames["behavior"].behavior_time, utc=True)
    return frames


def expected(frames: dict[str, pd.DataFrame], user: str, as_of: datetime) -> dict[str, object]:
    orders = frames["orders"][frames["orders"].user_id == user]
    paid = orders[~orders.status.isin(["returned", "refunded", "cancelled"])]
    start = pd.Timestamp(window_start(as_of))
    row: dict[str, object] = {
        "orders_total": len(paid),
        "monetary_total": round(float(paid.amount.sum()), 2),
        "returns_total": int((orders.status == "returned").sum()),
        "refunds_total": int((orders.status == "refunded").sum()),
    }
    for days in (30, 90, 365):
        inside = paid[paid.t > start - pd.Timedelta(days=days)]
        row[f"frequency_{days}d"] = len(inside)
        row[f"monetary_{days}d"] = round(float(inside.amount.sum()), 2)
    behavior = frames["behavior"][frames["behavior"].user_id == user]
    hours = pd.concat([behavior.t, paid.t]).map(lambda t: math.ceil(t.timestamp() / 3600))
    for days in (7, 30):
        lower = (start - pd.Timedelta(days=days)).timestamp() / 3600
        row[f"visits_{days}d"] = int(hours[hours > lower].nunique())
    return row


def test_redis_profiles_equal_pandas_as_of_their_as_of(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    gen = ("--customers", "30", "--months", "13", "--seed", "31", "--end", "2026-10-31")
    assert run_cli(settings, "generate", *gen, "--out", str(data)).returncode == 0
    worker.start()
    # Sources one after the other: orders arrive after behaviour that is months newer, so
    # most of them are late (out of order) and must still count in every window.
    for source in ("behavior", "customers", "orders", "tickets"):
        assert run_cli(settings, "import", source, str(data / f"{source}.jsonl")).returncode == 0
    wait_drained(settings, worker, timeout=300)
    frames = load(data)
    client = redis.Redis.from_url(settings.redis_url)
    profiles = scan_profiles(client, settings)
    client.close()
    assert len(profiles) == 30
    mismatches = []
    checked = 0
    for user, fields in profiles.items():
        as_of = datetime.fromisoformat(fields["as_of"])
        for name, value in expected(frames, user, as_of).items():
            got = float(fields[name]) if "." in fields[name] else int(fields[name])
            checked += 1
            if got != value:
                mismatches.append((user, name, got, value))
    assert mismatches == []
    assert checked == 30 * 12
    some = next(iter(profiles.values()))
    for name in ("as_of", "last_seen_at", "funnel_latest_step", "active_channels", "region"):
        assert name in some
