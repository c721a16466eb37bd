"""The analysis tables (docs/analysis-tables.md) from the customers' table values: pure.

``build_tables(values, library=..., campaigns=..., zone=...)`` turns ``{user_id: value}`` (as
the profiles table holds them, see :mod:`custpulse.processors.envelope_fold`) into pandas
DataFrames. Each customer's rows are as of its own ``as_of`` (the time of its last
evaluation); nothing reads a clock. Times are UTC (``datetime64[ns, UTC]``), days are local
calendar days in ``zone`` (naive midnight), money CNY from integer cents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import pandas as pd

from custpulse.processors import analysis_state as ana
from custpulse.processors import churn_fold
from custpulse.processors.campaigns import CampaignRules, in_holdout
from custpulse.processors.lifecycle import decide, evaluated_at

TIME_COLUMNS = ("as_of", "first_order_at", "last_order_at", "last_seen_at", "segment_since",
                "churn_scored_at")
NOT_EXPORTED = frozenset({"user_name", "phone", "email"})
"""Profile fields left out of the analysis tables: contact details, masked in the profile,
serve no analysis (use only for analysis: the brief's compliance rules)."""
COLUMNS = {
    "daily": ["user_id", "day", "channel", "browse", "add_to_cart", "purchases", "revenue",
              "returns", "events"],
    "tickets": ["user_id", "ticket", "opened_at", "closed_at", "issue_type", "is_complaint",
                "satisfaction", "handling_minutes"],
    "baskets": ["user_id", "order", "ordered_at", "items"],
    "segment_changes": ["user_id", "at", "group", "from", "to", "historical"],
    "contacts": ["user_id", "at", "action", "trigger", "contacted", "historical"],
}


def _utc(ms: int | None) -> pd.Timestamp:
    return pd.NaT if ms is None else pd.Timestamp(ms, unit="ms", tz=UTC)


def _text(value: Any) -> Any:
    """Lists and dicts as JSON text (as in the Redis hashes), so every format holds them."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def profile_row(user_id: str, value: Mapping[str, Any], library: Any,
                at: datetime) -> dict[str, Any]:
    """The profile view of one customer as of ``at`` (its last evaluation), with segments and
    churn fields: the fields the Redis profile hash carries."""
    view = decide(value.get("profile"), value.get("seg"), at, library=library, user_id=user_id,
                  cause="snapshot", event_time=at, processing_time=at, late=False).view
    row = {"user_id": user_id, **{k: v for k, v in view.items() if k not in NOT_EXPORTED}}
    if value.get("churn") is not None:
        row.update(churn_fold.state_fields(churn_fold.read(dict(value)) or {}, False))
    return {k: _text(v) for k, v in row.items()}


def build_tables(values: Mapping[str, Mapping[str, Any]], *, library: Any,
                 campaigns: CampaignRules, zone: tzinfo) -> dict[str, pd.DataFrame]:
    """The tables ``profiles``, ``daily``, ``tickets``, ``baskets``, ``segment_changes`` and
    ``contacts`` (rows in user_id order, then time)."""
    profiles: list[dict[str, Any]] = []
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in COLUMNS}
    for user_id in sorted(values):
        value = values[user_id]
        at = evaluated_at(value.get("seg"))
        if at is None:
            continue  # no evaluation yet: nothing is known as of any time
        profiles.append(profile_row(user_id, value, library, at))
        state = value.get("ana") or ana.new_state()
        for day in sorted(state["days"]):
            for channel in sorted(state["days"][day]):
                r = state["days"][day][channel]
                rows["daily"].append({
                    "user_id": user_id, "day": pd.Timestamp(day), "channel": channel,
                    "browse": r[ana.BROWSE], "add_to_cart": r[ana.CART],
                    "purchases": r[ana.PURCHASES], "revenue": r[ana.CENTS] / 100,
                    "returns": r[ana.RETURNS], "events": r[ana.EVENTS]})
        profile = value.get("profile") or {}
        tickets = (profile.get("service") or {}).get("tickets") or {}
        for key in sorted(tickets, key=lambda k: (tickets[k].get("opened") or 0, k)):
            tk = tickets[key]
            issue = state["issues"].get(key)
            rows["tickets"].append({
                "user_id": user_id, "ticket": key, "opened_at": _utc(tk.get("opened")),
                "closed_at": _utc(tk.get("closed")),
                "issue_type": None if issue is None else issue[1],
                "is_complaint": bool(tk.get("complaint") and tk["complaint"][1]),
                "satisfaction": float(tk["sat"][1]) if tk.get("sat") else float("nan"),
                "handling_minutes": float(tk["handle"][1]) if tk.get("handle")
                else float("nan")})
        baskets = state["baskets"]
        for key in sorted(baskets, key=lambda k: (baskets[k][0], k)):
            ms, items = baskets[key]
            rows["baskets"].append({"user_id": user_id, "order": key, "ordered_at": _utc(ms),
                                    "items": list(items)})
        for ms, group, old, new, historical in state["moves"]:
            rows["segment_changes"].append({
                "user_id": user_id, "at": _utc(ms), "group": group, "from": old, "to": new,
                "historical": bool(historical)})
            move = {"group": group, "old": old, "new": new}
            for trig in campaigns.triggers:
                if trig.matches(move):
                    campaign = str(trig.action.get("campaign") or trig.name)
                    rows["contacts"].append({
                        "user_id": user_id, "at": _utc(ms), "action": campaign,
                        "trigger": trig.name,
                        "contacted": not in_holdout(user_id, campaign, campaigns.holdout_share),
                        "historical": bool(historical)})
    out = {"profiles": _profiles_frame(profiles)}
    for name, columns in COLUMNS.items():
        out[name] = pd.DataFrame(rows[name], columns=columns)
    out["daily"]["day"] = pd.to_datetime(out["daily"]["day"])
    for name, column in (("tickets", "opened_at"), ("tickets", "closed_at"),
                         ("baskets", "ordered_at"), ("segment_changes", "at"),
                         ("contacts", "at")):
        out[name][column] = pd.to_datetime(out[name][column], utc=True)
    return out


def _profiles_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["user_id", "as_of"])
    for column in TIME_COLUMNS:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
