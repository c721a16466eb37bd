"""Liveness and readiness decisions: pure. Time comes in as ``now_s`` (seconds of a monotonic
or wall clock, the caller's choice, the same one throughout).

* **Progress watch**: a partition *stalls* when it has lag (its end offset is past the
  group's committed offset) and the committed offset has not moved for ``stall_after_s``. A
  partition without lag never stalls; one that moves is fresh again. This is the state the
  faust-streaming recovery stalls reported upstream leave behind: a worker that is up, holds
  its partitions and consumes nothing.
* **Heartbeat**: the worker's event loop beats every fraction of a second; no beat for
  ``beat_after_s`` means the loop is blocked (a live process that does nothing).
* **Readiness**: ready once the table recovery is done and partitions are assigned (set by
  the caller), not ready while a rebalance runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_STALL_AFTER_S = 120.0
DEFAULT_BEAT_AFTER_S = 30.0


@dataclass
class ProgressWatch:
    """Committed offsets per partition and since when each has not moved (while lagging)."""

    stall_after_s: float = DEFAULT_STALL_AFTER_S
    _since: dict[Any, tuple[int | None, float]] = field(default_factory=dict)
    _lagging: set[Any] = field(default_factory=set)

    def observe(self, key: Any, committed: int | None, end: int, now_s: float) -> None:
        """One sample of a partition: its committed offset (None: none yet) and end offset."""
        known = self._since.get(key)
        lagging = end > (committed or 0)
        if known is None or known[0] != committed or (lagging and key not in self._lagging):
            self._since[key] = (committed, now_s)  # moved, or the lag starts now
        if lagging:
            self._lagging.add(key)
        else:
            self._lagging.discard(key)
            self._since[key] = (committed, now_s)  # no lag: nothing to wait for

    def keep_only(self, keys: set[Any] | frozenset[Any]) -> None:
        """Forget partitions not in ``keys`` (no longer assigned to this worker)."""
        for key in list(self._since):
            if key not in keys:
                self._since.pop(key, None)
                self._lagging.discard(key)

    def stalled(self, now_s: float) -> list[Any]:
        """Partitions with lag and no progress for at least ``stall_after_s``, sorted."""
        return sorted((k for k in self._lagging
                       if now_s - self._since[k][1] >= self.stall_after_s), key=str)


@dataclass
class Health:
    """What the health endpoints answer; updated by the worker, read by the HTTP thread."""

    watch: ProgressWatch = field(default_factory=ProgressWatch)
    beat_after_s: float = DEFAULT_BEAT_AFTER_S
    ready: bool = False
    not_ready_because: str = "starting"
    last_beat_s: float | None = None
    stalled: list[Any] = field(default_factory=list)

    def beat(self, now_s: float) -> None:
        self.last_beat_s = now_s

    def set_ready(self, ready: bool, because: str = "") -> None:
        self.ready, self.not_ready_because = ready, because

    def check_progress(self, now_s: float) -> None:
        self.stalled = self.watch.stalled(now_s)

    def liveness(self, now_s: float) -> tuple[bool, dict[str, Any]]:
        """``(live, details)``: not live when the event loop has not beaten for
        ``beat_after_s`` or a partition is stalled."""
        problems = []
        if self.last_beat_s is not None and now_s - self.last_beat_s > self.beat_after_s:
            problems.append(f"event loop silent for {now_s - self.last_beat_s:.0f} s")
        if self.stalled:
            problems.append("partitions with lag and no progress for "
                            f"{self.watch.stall_after_s:.0f} s: "
                            + ", ".join(str(k) for k in self.stalled))
        return not problems, {"live": not problems, "problems": problems}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {"ready": self.ready,
                            "because": "" if self.ready else self.not_ready_because}
