"""Event-time clock: the watermark that says how far event time has progressed for a worker.

Event time is tracked **per input** (one input = one partition of one raw topic, so also per
source): an input's time is the latest event time it has delivered. The worker's watermark is
the **minimum over the active inputs** minus the allowed lateness, as in Flink and Bytewax: a
source that runs ahead (behaviour imported before orders) does not drag the others along. An
input that delivered nothing for ``idle_timeout`` of wall-clock time is idle and no longer holds
the watermark back, unless it still has records not yet read (the ingest stage reports those:
such an input is active whatever the wall clock says, and one that has delivered nothing
yet holds the watermark where it is); when every input is idle, the watermark is the latest
time of all of them (the end of the data has been reached: idle customers may age to it). The
watermark never moves back.

With ``mode="wall"`` it also follows wall-clock time minus the lateness, so customers keep
ageing while no events arrive (live operation); with ``mode="follow"`` (replays, tests) it moves
with event time only.

The watermark decides only when time-driven re-evaluations (ticks) are due. It never decides a
customer's own ``as_of`` or whether an event is ``late``: those are per customer (see
:mod:`custpulse.processors.envelope_fold`).

>>> from datetime import datetime, timedelta, UTC
>>> wall = datetime(2030, 1, 1, tzinfo=UTC)
>>> clock = Watermark(timedelta(minutes=5), idle_timeout=timedelta(seconds=30))
>>> clock.observe(datetime(2026, 11, 1, tzinfo=UTC), wall, "behavior:0")
>>> clock.observe(datetime(2026, 6, 1, 12, tzinfo=UTC), wall, "orders:0")
>>> clock.current(wall).isoformat()  # the slower input holds it back
'2026-06-01T11:55:00+00:00'
>>> clock.current(wall + timedelta(minutes=1)).isoformat()  # both idle: the end of the data
'2026-10-31T23:55:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_IDLE_TIMEOUT = timedelta(seconds=30)
DEFAULT_STALE_AFTER = timedelta(seconds=10)
"""A report (see :class:`InputReport`) not refreshed for this long (by the receiver's clock)
holds the watermark where it is: the process that read the input may be gone, and until
another one reports, its unread records may be earlier than anything else."""
MAX_REPORT_AGE = timedelta(minutes=5)
"""A report older than this when it is received (by its own ``reported`` time: a record of an
earlier run read back from the compacted topic) is stale from the start. Hosts' clocks must
agree to within this."""


@dataclass(frozen=True, slots=True)
class InputReport:
    """What the process reading one input says about it (all times aware).

    ``time``: the latest event time of the input whose envelopes are acknowledged on
    ``<prefix>events`` (None before any); ``seen``: the wall-clock time it last delivered an
    event; ``lagging``: whether it has records not yet read; ``reported``: the wall-clock time
    of the report. Ingest processes send these, fold processes combine them
    (:meth:`Watermark.apply`), so several processes share one watermark."""

    time: datetime | None
    seen: datetime | None
    lagging: bool
    reported: datetime


@dataclass
class Watermark:
    lateness: timedelta = timedelta(0)
    mode: str = "follow"
    idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT
    _inputs: dict[str, tuple[datetime, datetime]] = field(default_factory=dict, repr=False)
    """input -> (latest event time, wall-clock time of its last event)."""
    stale_after: timedelta = DEFAULT_STALE_AFTER
    _floor: datetime | None = field(default=None, repr=False)
    _lagging: frozenset[str] = field(default=frozenset(), repr=False)
    _reports: dict[str, tuple[bool, datetime | None]] = field(default_factory=dict, repr=False)
    """input -> (lagging, when its report was received; None: stale on arrival)."""

    def set_lagging(self, inputs: set[str] | frozenset[str]) -> None:
        """The inputs that still have records not yet read (whatever the wall clock says,
        they are active; one that has delivered nothing yet holds the watermark where it is)."""
        self._lagging = frozenset(inputs)

    def observe(self, event_time: datetime, wall: datetime, input: str = "default") -> None:
        """Note that ``input`` delivered an event of ``event_time`` at wall-clock ``wall``
        (both aware)."""
        known = self._inputs.get(input)
        latest = event_time if known is None or event_time > known[0] else known[0]
        self._inputs[input] = (latest, wall)

    def report(self, input: str, lagging: bool, wall: datetime) -> InputReport:
        """This clock's knowledge of ``input`` as a report (for other processes)."""
        known = self._inputs.get(input)
        return InputReport(known[0] if known else None, known[1] if known else None,
                           lagging, wall)

    def apply(self, input: str, report: InputReport, received: datetime | None = None) -> None:
        """Take another process's report on ``input``, received at ``received`` (this
        process's wall clock; default: the report's own time). The report replaces what was
        known of the input (a new reader that has acknowledged nothing yet reports no time);
        the watermark itself never moves back. Its ``seen`` is taken as an age (``reported -
        seen``), so the sender's clock matters only for :data:`MAX_REPORT_AGE`. While any
        report is stale (not refreshed for ``stale_after``, or too old on arrival) the
        watermark holds where it is; a ``lagging`` one holds it like a lagging input."""
        received = report.reported if received is None else received
        fresh = received - report.reported <= MAX_REPORT_AGE
        if report.time is not None and report.seen is not None:
            self._inputs[input] = (report.time, received - (report.reported - report.seen))
        else:
            self._inputs.pop(input, None)
        self._reports[input] = (report.lagging, received if fresh else None)

    def forget(self, input: str) -> None:
        """Drop ``input`` (retired: its report was deleted)."""
        self._inputs.pop(input, None)
        self._reports.pop(input, None)

    def _stale(self, wall: datetime) -> bool:
        return any(at is None or wall - at > self.stale_after
                   for _, at in self._reports.values())

    def _holding(self) -> frozenset[str]:
        if not self._reports:
            return self._lagging
        return self._lagging | {name for name, (lagging, _) in self._reports.items() if lagging}

    @property
    def latest_event(self) -> datetime | None:
        """The latest event time of any input."""
        return max((t for t, _ in self._inputs.values()), default=None)

    def inputs(self, wall: datetime) -> dict[str, tuple[datetime, bool]]:
        """Per input: its event time and whether it is active at ``wall``."""
        return {name: (t, wall - seen < self.idle_timeout)
                for name, (t, seen) in self._inputs.items()}

    def current(self, wall: datetime) -> datetime | None:
        """The watermark at wall-clock time ``wall`` (aware), or None before any event."""
        candidates = []
        lagging = self._holding()
        if self._reports and self._stale(wall):
            return self._floor  # a reader may be gone: wait for the input's next report
        if any(name not in self._inputs for name in lagging):
            return self._floor  # an input with unread records and no time yet: wait for it
        if self._inputs:
            active = [t for name, (t, seen) in self._inputs.items()
                      if wall - seen < self.idle_timeout or name in lagging]
            base = min(active) if active else max(t for t, _ in self._inputs.values())
            candidates.append(base - self.lateness)
        if self.mode == "wall":
            candidates.append(wall - self.lateness)
        if not candidates:
            return self._floor
        value = max(candidates)
        if self._floor is not None and value < self._floor:
            value = self._floor
        self._floor = value
        return value
