"""Ops alerts: dead-letter spikes, complaint spikes and funnel drops against a trailing baseline.

Pure and clock-free: callers feed counts with :meth:`OpsMonitor.observe` (event time) and ask
:meth:`OpsMonitor.check` with ``now`` (their watermark). Times are aware datetimes.

Time semantics
--------------
* Bucket ``b`` holds the events with ``floor(t / bucket_s) == b`` (``t`` = seconds since the
  Unix epoch, UTC): buckets are left-closed, ``[b * bucket_s, (b + 1) * bucket_s)``.
* At ``now`` the current bucket ``n = floor(now / bucket_s)`` is still open. The *window* is the
  ``window_buckets`` complete buckets before it, ``[n - window_buckets, n)``; the *baseline* is
  the ``baseline_buckets`` buckets before the window. Late events still count in their bucket,
  but an alert already fired for a window is not fired again (ids are per kind and window
  start, kept for the baseline horizon). Windows slide by one bucket, so a spike that lasts
  several buckets is reported for each window start that sees it over the threshold.
* A baseline without any observation means "no idea what normal is": no alert.
* Memory is bounded: buckets before ``n - window_buckets - baseline_buckets`` (``n`` of the
  latest check) are dropped, observations that old are ignored (counted as ``late_dropped``),
  and at most ``2 * (window_buckets + baseline_buckets) + 2`` buckets are held at any time.

Units: ``bucket_s`` seconds; rates are fractions (0.05 = 5%); counts are events.

>>> from datetime import UTC, datetime, timedelta
>>> m = OpsMonitor(OpsConfig(window_buckets=1, baseline_buckets=2, min_volume=10))
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> for minute in range(3):
...     m.observe("in", t0 + timedelta(minutes=minute), 100)
>>> m.observe("deadletter", t0 + timedelta(minutes=2), 40)
>>> [a["kind"] for a in m.check(t0 + timedelta(minutes=3))], m.check(t0 + timedelta(minutes=3))
(['deadletter_spike'], [])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from custpulse.errors import ConfigError
from custpulse.schemas.times import to_iso

KINDS = ("in", "deadletter", "complaint", "add_to_cart", "order", "ticket")
ALERT_KINDS = ("deadletter_spike", "complaint_spike", "funnel_drop")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OpsConfig:
    """Thresholds. ``bucket_s`` in seconds, windows in buckets, rates and factors as fractions,
    volumes as event counts (over the window unless the name says baseline)."""

    bucket_s: int = 60
    window_buckets: int = 5
    baseline_buckets: int = 60
    deadletter_rate_factor: float = 3.0
    deadletter_rate_floor: float = 0.05
    min_volume: int = 50
    complaint_factor: float = 3.0
    complaint_min: int = 5
    funnel_drop_factor: float = 0.5
    funnel_min_volume: int = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            integral = f.type in (int, "int")
            if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
                kind = "an integer" if integral else "a number"
                raise ConfigError(f"Ops setting {f.name} must be {kind}, got {value!r}.")
            if value < 0 or (
                value == 0 and f.name in ("bucket_s", "window_buckets", "baseline_buckets")
            ):
                raise ConfigError(f"Ops setting {f.name} must be positive, got {value!r}.")


class OpsMonitor:
    """Counts per time bucket (bucket = floor(event_time / bucket_s)); checks the latest complete
    window against the baseline of the buckets before it."""

    def __init__(self, config: OpsConfig = OpsConfig()) -> None:
        self.config = config
        self._buckets: dict[int, dict[str, int]] = {}
        self._fired: set[tuple[str, int]] = set()
        self._now_bucket: int | None = None  # latest bucket `check` was called in
        self._late_dropped = 0
        span = config.window_buckets + config.baseline_buckets
        self._span = span
        self._max_buckets = 2 * span + 2

    # --- feeding ------------------------------------------------------------------------------

    def observe(self, kind: str, at: datetime, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` (one of :data:`KINDS`) at event time ``at`` (aware).

        Raises ``ValueError`` for an unknown kind, a negative ``n`` or a naive datetime.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown ops kind {kind!r}: use one of {', '.join(KINDS)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"ops count must be a non-negative integer, got {n!r}")
        bucket = self._bucket(at)
        if n == 0:
            return
        if self._now_bucket is not None and bucket < self._now_bucket - self._span:
            self._late_dropped += n
            return
        counts = self._buckets.setdefault(bucket, {})
        counts[kind] = counts.get(kind, 0) + n
        if len(self._buckets) > self._max_buckets:
            del self._buckets[min(self._buckets)]

    # --- checking -----------------------------------------------------------------------------

    def check(self, now: datetime) -> list[dict[str, Any]]:
        """Ops alerts for the window of complete buckets ending at ``floor(now)`` (aware), each
        at most once per (kind, window start) for the life of the monitor."""
        cfg = self.config
        n = self._bucket(now)
        self._advance(n)
        start = n - cfg.window_buckets
        window = self._sum(start, n)
        baseline = self._sum(start - cfg.baseline_buckets, start)
        if not any(baseline.values()):
            return []
        alerts = []
        for kind, found in (
            ("deadletter_spike", self._deadletter(window, baseline)),
            ("complaint_spike", self._complaint(window, baseline)),
            ("funnel_drop", self._funnel(window, baseline)),
        ):
            if found is None or (kind, start) in self._fired:
                continue
            self._fired.add((kind, start))
            alerts.append(self._alert(kind, start, n, window, baseline, found))
        return alerts

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """Counts per kind in the window and the baseline at ``now`` (default: the latest
        check), JSON-ready. Reading does not move the monitor's clock."""
        n = self._bucket(now) if now is not None else self._now_bucket
        out: dict[str, Any] = {
            "v": 1,
            "bucket_s": self.config.bucket_s,
            "buckets_held": len(self._buckets),
            "late_dropped": self._late_dropped,
        }
        if n is None:
            empty = self._sum(0, 0)
            keys = ("window_start", "window_end", "baseline_start")
            return out | dict.fromkeys(keys) | {"window": empty, "baseline": dict(empty)}
        start = n - self.config.window_buckets
        base_start = start - self.config.baseline_buckets
        return out | {
            "window_start": self._iso(start),
            "window_end": self._iso(n),
            "baseline_start": self._iso(base_start),
            "window": self._sum(start, n),
            "baseline": self._sum(base_start, start),
        }

    # --- rules: each returns (value, baseline, threshold, message) or None -------------------

    def _deadletter(self, win: dict[str, int], base: dict[str, int]) -> tuple | None:
        cfg = self.config
        if win["in"] < max(cfg.min_volume, 1) or base["in"] == 0 or win["deadletter"] == 0:
            return None
        rate, base_rate = win["deadletter"] / win["in"], base["deadletter"] / base["in"]
        threshold = max(cfg.deadletter_rate_factor * base_rate, cfg.deadletter_rate_floor)
        if rate < threshold:
            return None
        text = (
            f"Dead-letter rate {rate:.1%} ({win['deadletter']} of {win['in']} events) is at "
            f"or above the threshold {threshold:.1%} (baseline {base_rate:.1%})"
        )
        return rate, base_rate, threshold, text

    def _complaint(self, win: dict[str, int], base: dict[str, int]) -> tuple | None:
        cfg = self.config
        per_window = base["complaint"] * cfg.window_buckets / cfg.baseline_buckets
        threshold = max(float(cfg.complaint_min), cfg.complaint_factor * per_window)
        if win["complaint"] < max(threshold, 1):
            return None
        text = (
            f"{win['complaint']} complaints is at or above the threshold {threshold:g} "
            f"(baseline {per_window:.1f} per window)"
        )
        return win["complaint"], per_window, threshold, text

    def _funnel(self, win: dict[str, int], base: dict[str, int]) -> tuple | None:
        cfg = self.config
        if min(win["add_to_cart"], base["add_to_cart"]) < max(cfg.funnel_min_volume, 1):
            return None
        conv = win["order"] / win["add_to_cart"]
        base_conv = base["order"] / base["add_to_cart"]
        threshold = cfg.funnel_drop_factor * base_conv
        if conv >= threshold:
            return None
        text = (
            f"Cart-to-order conversion fell to {conv:.1%} ({win['order']} orders from "
            f"{win['add_to_cart']} add-to-carts), below {threshold:.1%} "
            f"(baseline {base_conv:.1%})"
        )
        return conv, base_conv, threshold, text

    # --- helpers ------------------------------------------------------------------------------

    def _alert(self, kind: str, start: int, end: int, win: dict, base: dict, found: tuple) -> dict:
        value, baseline, threshold, text = found
        window_start, window_end = self._iso(start), self._iso(end)
        digest = hashlib.sha256(f"{kind}\x00{window_start}".encode()).hexdigest()
        return {
            "v": 1,
            "alert_id": "o-" + digest[:24],
            "kind": kind,
            "window_start": window_start,
            "window_end": window_end,
            "value": round(float(value), 6),
            "baseline": round(float(baseline), 6),
            "threshold": round(float(threshold), 6),
            "detail": {
                "window": win,
                "baseline": base,
                "window_buckets": self.config.window_buckets,
                "baseline_buckets": self.config.baseline_buckets,
                "bucket_s": self.config.bucket_s,
            },
            "message": f"{text} in the window {window_start} to {window_end}.",
        }

    def _bucket(self, at: datetime) -> int:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("naive datetime: ops times must carry a zone")
        return (at - _EPOCH) // timedelta(seconds=self.config.bucket_s)

    def _iso(self, bucket: int) -> str:
        return to_iso(_EPOCH + timedelta(seconds=bucket * self.config.bucket_s))

    def _sum(self, lo: int, hi: int) -> dict[str, int]:
        """Counts per kind over buckets ``[lo, hi)``."""
        total = dict.fromkeys(KINDS, 0)
        for bucket, counts in self._buckets.items():
            if lo <= bucket < hi:
                for kind, count in counts.items():
                    total[kind] += count
        return total

    def _advance(self, n: int) -> None:
        """Move the horizon forward to ``n - span`` (never back) and drop what fell behind."""
        if self._now_bucket is not None and n <= self._now_bucket:
            return
        self._now_bucket = n
        horizon = n - self._span
        for bucket in [b for b in self._buckets if b < horizon]:
            del self._buckets[bucket]
        self._fired = {key for key in self._fired if key[1] >= horizon}
