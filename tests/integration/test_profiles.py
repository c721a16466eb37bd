"""Live profiles in Redis equal an independent pandas computation over the generated files,
as of each profile's own ``as_of``."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
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
    tickets = frames["tickets"]
    tickets["closed"] = pd.to_datetime(tickets.closed_at).dt.tz_localize(SH)
    tickets["complaint"] = (tickets.is_complaint == True) | tickets.issue_type.isin(  # noqa: E712
        ["complaint", "投诉", "投訴"])
    return frames


def to_cents(amount: object) -> int:
    """CNY -> integer cents, half-up on the decimal value (the profile's money rule)."""
    return int(Decimal(repr(float(amount))).quantize(Decimal("0.01"), ROUND_HALF_UP) * 100)


def expected(frames: dict[str, pd.DataFrame], user: str, as_of: datetime) -> dict[str, object]:
    """Integer-valued and money fields (never empty) of one profile, from the files."""
    orders = frames["orders"][frames["orders"].user_id == user]
    paid = orders[~orders.status.isin(["returned", "refunded", "cancelled"])]
    paid = paid.assign(cents=paid.amount.map(to_cents))  # money is summed in integer cents
    start = pd.Timestamp(window_start(as_of))
    row: dict[str, object] = {
        "orders_total": len(paid),
        "monetary_total": int(paid.cents.sum()) / 100,
        "returns_total": int((orders.status == "returned").sum()),
        "refunds_total": int((orders.status == "refunded").sum()),
    }
    for days in (30, 90, 365):
        inside = paid[paid.t > start - pd.Timedelta(days=days)]
        row[f"frequency_{days}d"] = len(inside)
        row[f"monetary_{days}d"] = int(inside.cents.sum()) / 100
    behavior = frames["behavior"][frames["behavior"].user_id == user]
    hours = pd.concat([behavior.t, paid.t]).map(lambda t: math.ceil(t.timestamp() / 3600))
    for days in (7, 30):
        lower = (start - pd.Timedelta(days=days)).timestamp() / 3600
        row[f"visits_{days}d"] = int(hours[hours > lower].nunique())
    # tickets count once per ticket id; a complaint is open until its closed_at
    tickets = frames["tickets"][frames["tickets"].user_id == user].groupby("ticket_id").last()
    complaints = tickets[tickets.complaint]
    row["tickets_total"] = len(tickets)
    row["complaints_total"] = len(complaints)
    row["open_complaints"] = int((complaints.closed.isna()
                                  | (complaints.closed > pd.Timestamp(as_of))).sum())
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
    assert checked == 30 * 15
    some = next(iter(profiles.values()))
    for name in ("as_of", "last_seen_at", "funnel_latest_step", "active_channels", "region"):
        assert name in some
