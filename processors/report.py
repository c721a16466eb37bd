"""The periodic data-driven report: pure. ``build_report(tables, ...) -> Report``.

The five parts of the brief (seed 000 step 4): core conclusion; key metrics with their
period-over-period change; breakdown by dimension; problem diagnosis; concrete suggestions.
Every sentence is generated from the tables (docs/analysis-tables.md) by the analyses in
:mod:`custpulse.processors.analyses`: the biggest movers and the data that explains them
("what, why, what to do"), never canned text. Nothing reads a clock: the report is as of
``end_day``, by default the latest local day in the data.

Periods are rolling windows of local days ending at ``end_day`` (week: 7 days, month: 30),
compared with the window just before (see
:func:`custpulse.processors.analyses.descriptive.period_over_period`); the funnel uses
calendar weeks (Monday to Sunday) or months, the last one that contains ``end_day``.

Role cuts (the brief): ``marketing`` gets segments, value, CLV, baskets, campaign effect and
its suggestions; ``operations`` the activity trend, funnel, channels and regions; ``service``
satisfaction, handling time and complaints; ``all`` everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Any

import pandas as pd

from custpulse.processors.analyses import (
    basket,
    campaign_effect,
    channels,
    clv,
    descriptive,
    funnel,
    satisfaction,
)

ROLES = ("marketing", "operations", "service", "all")
PERIODS = ("week", "month")
SUMMARY_COLUMNS = ("report_date", "core_conclusion", "key_metric", "problem_diag", "suggestion",
                   "owner", "follow_up_date")
CHART_KINDS = ("line", "pie", "heatmap", "funnel")
CLV_HORIZON_DAYS = 90
"""The predictive CLV's horizon in the report (days)."""
AT_RISK_P_ALIVE = 0.5
"""A valuable customer with P(alive) below this is diagnosed as at risk."""
MIN_RATED = 10
CSAT_GAP = 0.2
"""Points (1..5 scale) an issue type's CSAT must lie below the overall mean to be a finding."""
"""Rated tickets an issue type needs before its CSAT is diagnosed."""

_METRIC_NAMES = {
    "active_customers": "active customers", "events": "events", "browse": "browse events",
    "add_to_cart": "add-to-cart events", "purchases": "purchases", "buyers": "buyers",
    "revenue": "revenue (CNY)", "conversion_rate": "conversion rate (buyers / active)",
}
_OPERATIONS_METRICS = frozenset({"active_customers", "events", "browse", "add_to_cart",
                                 "conversion_rate"})
"""Movers of these metrics are findings for operations (traffic and funnel); purchases,
buyers and revenue for marketing."""
_ROLE_CHARTS = {"marketing": ("line", "pie", "heatmap"), "operations": ("line", "funnel",
                                                                         "heatmap"),
                "service": ("line",), "all": CHART_KINDS}


@dataclass(frozen=True)
class Chart:
    """One chart: ``kind`` in :data:`CHART_KINDS`; ``data`` indexed by x (line: one column per
    series; pie: one column of shares; heatmap: rows x columns; funnel: steps x series)."""

    name: str
    kind: str
    title: str
    section: str
    data: pd.DataFrame
    ylabel: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """One finding: what moved, why (the data that explains it), what to do and who."""

    topic: str
    owner: str
    what: str
    why: str
    suggestion: str
    key_metric: str
    weight: float
    """How much it matters (for ordering: a relative change or a gap, 0..)."""

    @property
    def text(self) -> str:
        return f"{self.what} {self.why}".strip()


@dataclass
class Report:
    role: str
    period: str
    end_day: date
    title: str
    meta: str
    change_label: str
    conclusions: list[str] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    breakdowns: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    follow_up: date | None = None

    def summary(self) -> pd.DataFrame:
        """The summary table (the seed's columns): one row per diagnosis, in order."""
        headline = self.conclusions[0] if self.conclusions else ""
        rows = [{"report_date": self.end_day.isoformat(), "core_conclusion": headline,
                 "key_metric": d.key_metric, "problem_diag": d.text, "suggestion": d.suggestion,
                 "owner": d.owner,
                 "follow_up_date": (self.follow_up or self.end_day).isoformat()}
                for d in self.diagnoses]
        return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.1f}%"


def _num(value: float, metric: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric == "conversion_rate":
        return f"{100 * value:.1f}%"
    if metric == "revenue":
        return f"¥{value:,.0f}"
    return f"{value:,.0f}"


def _with_attributes(daily: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """``daily`` with each customer's current segment and region (as of its ``as_of``)."""
    cols = [c for c in ("segment", "region", "member_level") if c in profiles]
    attrs = profiles[["user_id", *cols]].drop_duplicates("user_id")
    out = daily.merge(attrs, on="user_id", how="left")
    for c in cols:
        out[c] = out[c].fillna("none" if c == "segment" else "unknown").astype(str)
    return out


def _explain(by_tables: Mapping[str, pd.DataFrame], metric: str, change: float) -> str:
    """Which value of each dimension carries most of ``change`` of ``metric``."""
    parts = []
    for dim, table in by_tables.items():
        rows = table[table["metric"] == metric]
        if rows.empty or change == 0 or metric == "conversion_rate":
            continue
        same = rows[(rows["change"] * change) > 0]
        if same.empty:
            continue
        top = same.loc[same["change"].abs().idxmax()]
        share = top["change"] / change
        parts.append(f"{dim} {top[dim]} accounts for {_num(abs(top['change']), metric)} of it "
                     f"({100 * share:.0f}%; {_pct(top['change_pct'])} there)")
    return ("Why: " + "; ".join(parts) + ".") if parts else ""


_ANCHOR = pd.Timestamp("2000-01-03")  # a Monday


def _window_funnel(daily: pd.DataFrame, profiles: pd.DataFrame, first: pd.Timestamp,
                   last: pd.Timestamp, zone: tzinfo) -> pd.DataFrame:
    """:func:`funnel.funnel` of the report's window ``[first, last]`` (local days) as one
    period: the window's days are mapped onto one week and every earlier day onto the day
    before it, first orders likewise, so "bought before the period" means before ``first``."""
    rows = daily[daily["day"] <= last].copy()
    inside = rows["day"] >= first
    rows["day"] = _ANCHOR
    rows.loc[~inside, "day"] = _ANCHOR - pd.Timedelta(days=1)
    prof = profiles[["user_id", "first_order_at"]].copy()
    local = prof["first_order_at"].dt.tz_convert(zone).dt.tz_localize(None)
    anchor = pd.Timestamp(_ANCHOR, tz=zone).tz_convert("UTC")
    before = pd.Timestamp(_ANCHOR - pd.Timedelta(days=1), tz=zone).tz_convert("UTC")
    prof["first_order_at"] = prof["first_order_at"].where(
        local.isna(), anchor).where(~(local < first), before)
    out = funnel.funnel(rows, freq="W", profiles=prof,
                        source_tz=getattr(zone, "key", "Asia/Shanghai"))
    out = out[out["period"].str.startswith(_ANCHOR.strftime("%Y-%m-%d"))].copy()
    out["period"] = f"{first.date()}..{last.date()}"
    return out.reset_index(drop=True)


def _action_for_drop(metric: str, by_tables: Mapping[str, pd.DataFrame],
                     attrs: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp,
                     prev_first: pd.Timestamp) -> str:
    """The suggestion for a falling metric: the customers active before and silent now in the
    dimension value that explains most of the drop."""
    table = by_tables.get("segment")
    target = None
    if table is not None:
        rows = table[(table["metric"] == metric) & (table["change"] < 0)]
        if not rows.empty:
            target = rows.loc[rows["change"].idxmin(), "segment"]
    before = set(attrs.loc[(attrs["day"] >= prev_first) & (attrs["day"] < first)
                           & (attrs["events"] > 0), "user_id"])
    now = set(attrs.loc[(attrs["day"] >= first) & (attrs["day"] <= last)
                        & (attrs["events"] > 0), "user_id"])
    silent = attrs[attrs["user_id"].isin(before - now)]
    if target is not None:
        silent = silent[silent["segment"] == target]
    n = silent["user_id"].nunique()
    where = f"the {target} segment" if target is not None else "all segments"
    who = "the customer" if n == 1 else f"the {n} customers"
    return (f"Re-engage {who} of {where} active in the previous period and not in this one "
            f"(win-back or reminder campaign with a holdout); follow {metric} next period.")


def last_complete_day(profiles: pd.DataFrame, zone: tzinfo) -> date:
    """The latest local day the data covers completely: the day before the local day of the
    latest customer ``as_of`` (the state's event-time watermark), so a report never compares
    a half day with whole ones."""
    latest = pd.Timestamp(profiles["as_of"].max()).tz_convert(zone)
    return latest.date() - timedelta(days=1)


def _period_label(value: Any) -> str:
    if isinstance(value, pd.Timestamp | date):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return str(value)


def build_report(tables: Mapping[str, pd.DataFrame], *, period: str, role: str,
                 zone: tzinfo, end_day: date | None = None,
                 costs: pd.DataFrame | None = None) -> Report:
    """The report of ``role`` for the ``period`` ending at ``end_day`` (local day)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    profiles, daily = tables["profiles"], tables["daily"]
    tickets, baskets = tables["tickets"], tables["baskets"]
    if daily.empty:
        raise ValueError("there is no activity in the workers' state yet: nothing to report")
    end = end_day or last_complete_day(profiles, zone)
    first, last, prev_first, prev_last = descriptive.period_bounds(pd.Timestamp(end), period)
    # nothing after the report's last day counts (a later, partial day is not compared)
    daily = daily[daily["day"] <= pd.Timestamp(end)]
    if daily.empty:
        raise ValueError(f"there is no activity on or before {end.isoformat()}: choose a "
                         "later --end")
    if (daily["channel"] == funnel.ALL).any():  # a source's own channel called "all"
        daily = daily.assign(channel=daily["channel"].replace(funnel.ALL, "all (channel)"))
    until = pd.Timestamp(end + timedelta(days=1), tz=zone).tz_convert("UTC")
    tickets = tickets[tickets["opened_at"] < until]
    label = "week on week" if period == "week" else "month on month (30 days)"
    report = Report(
        role=role, period=period, end_day=end, change_label=label,
        title=f"custpulse {period}ly report — {role} — {first.date()} to {last.date()}",
        meta=(f"Period {first.date()}..{last.date()} vs {prev_first.date()}..{prev_last.date()}"
              f" (local days, {getattr(zone, 'key', zone)}); {len(profiles)} customers; "
              f"state as of {pd.Timestamp(profiles['as_of'].max()).isoformat()} (latest "
              f"customer as_of)."),
        follow_up=end + timedelta(days=7 if period == "week" else 30))
    attrs = _with_attributes(daily, profiles)
    pop = descriptive.period_over_period(daily, pd.Timestamp(end), period)
    by = {dim: descriptive.period_over_period(attrs, pd.Timestamp(end), period, by=dim)
          for dim in ("channel", "segment", "region")}
    metrics = pop.copy()
    metrics.insert(0, "name", metrics["metric"].map(_METRIC_NAMES))
    report.metrics = metrics.drop(columns=["metric"])
    wanted = set(_ROLE_CHARTS[role])
    diagnoses: list[Diagnosis] = []
    conclusions: list[str] = []

    # --- movers: what moved most, and who carries it
    movers = descriptive.biggest_movers(pop, n=3)
    for _, row in movers.iterrows():
        metric = row["metric"]
        direction = "rose" if row["change"] > 0 else "fell"
        owner = "operations" if metric in _OPERATIONS_METRICS else "marketing"
        name = _METRIC_NAMES[metric]
        what = (f"{name[:1].upper()}{name[1:]} {direction} {_pct(row['change_pct'])} "
                f"{label} ({_num(row['previous'], metric)} -> {_num(row['current'], metric)}).")
        what = what.replace(f"{direction} {_pct(row['change_pct'])}",
                            f"{direction} {abs(row['change_pct']):.1f}%")
        why = _explain(by, metric, row["change"])
        if row["change"] < 0:
            suggestion = _action_for_drop(metric, by, attrs, first, last, prev_first)
        else:
            top = by["channel"][(by["channel"]["metric"] == metric)]
            top = top.loc[top["change"].idxmax(), "channel"] if not top.empty else "it"
            suggestion = (f"Keep what drove the rise: look at what changed on channel {top} "
                          f"and extend it to the other channels.")
        diagnoses.append(Diagnosis("movers", owner, what, why, suggestion,
                                   f"{metric} {_pct(row['change_pct'])}",
                                   abs(row["change_pct"]) / 100))
    if movers.empty:
        row = pop.set_index("metric").loc["revenue"]
        conclusions.append(f"No metric moved on a base large enough to call: revenue "
                           f"{_num(row['current'], 'revenue')} "
                           f"({_pct(row['change_pct'])} {label}).")

    # --- segments and value
    shares = descriptive.segment_shares(profiles)
    value_lines: list[str] = []  # for marketing and all
    if not shares.empty and shares["revenue"].sum() > 0:
        top = shares.iloc[0]
        value_lines.append(
            f"{top['segment']} customers ({100 * top['share']:.1f}% of customers) bring "
            f"{100 * top['revenue_share']:.1f}% of revenue over 365 days.")
        if "high_value" in set(shares["segment"]) and top["segment"] != "high_value":
            hv = descriptive.headline_share(shares)
            value_lines.append(f"High-value customers bring {100 * hv:.1f}% of revenue.")
    changes = tables["segment_changes"]
    if not changes.empty:
        local = changes["at"].dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
        into = changes[(changes["group"] == "value") & changes["to"].isin(
            ["churn_risk", "churned"])]
        cur = int(((local[into.index] >= first) & (local[into.index] <= last)).sum())
        prev = int(((local[into.index] >= prev_first) & (local[into.index] <= prev_last)).sum())
        if cur or prev:
            pct = 100 * (cur - prev) / prev if prev else math.nan
            weight = 0.05 if cur <= prev else (abs(pct) / 100 if not math.isnan(pct) else 0.5)
            entered = into[(local[into.index] >= first) & (local[into.index] <= last)]
            n = entered["user_id"].nunique()
            diagnoses.append(Diagnosis(
                "churn", "marketing",
                f"{cur} moves into churn_risk/churned this period vs {prev} before "
                f"({_pct(pct)}).",
                f"Why: {n} distinct customers stopped ordering long enough to cross the "
                f"recency thresholds of the value rules.",
                f"Send the win-back offer to the {n} customers who entered churn_risk/churned "
                f"(their holdout measures it); check their last tickets first.",
                f"churn moves {cur} ({_pct(pct)})", weight))

    # --- funnel
    freq = "W" if period == "week" else "M"
    fun = _window_funnel(daily, profiles, first, last, zone)
    if not fun.empty:
        latest = f"{first.date()}..{last.date()}"
        now_all = fun[(fun["period"] == latest) & (fun["channel"] == funnel.ALL)].iloc[0]
        step, rate = now_all["weakest_step"], now_all["weakest_rate"]
        if isinstance(step, str) and not math.isnan(rate):
            col = next(t[0] for t in funnel.TRANSITIONS if t[1] == step)
            chans = fun[(fun["period"] == latest) & (fun["channel"] != funnel.ALL)
                        & fun[col].notna()]
            worst = chans.loc[chans[col].idxmin()] if not chans.empty else None
            why = (f"Why: on channel {worst['channel']} it is {100 * worst[col]:.1f}% "
                   f"({int(worst[next(t[2] for t in funnel.TRANSITIONS if t[1] == step)])} "
                   f"customers at the step before)." if worst is not None else "")
            where = worst["channel"] if worst is not None else "all channels"
            if step == "add_to_cart->order":
                carts = attrs[(attrs["day"] >= first) & (attrs["day"] <= last)]
                per = carts.groupby("user_id")[["add_to_cart", "purchases"]].sum()
                n = int(((per["add_to_cart"] > 0) & (per["purchases"] == 0)).sum())
                suggestion = (f"Cart reminder within 24 h for the {n} customers who added to "
                              f"cart without ordering this period; check checkout and payment "
                              f"on {where}.")
                owner = "operations"
            elif step == "browse->add_to_cart":
                suggestion = (f"Review product pages and recommendations on {where}; show the "
                              f"top bought-together pairs (basket rules below) next to them.")
                owner = "operations"
            else:
                suggestion = (f"Second-purchase offer for this period's first-time buyers "
                              f"({int(now_all['order'] - now_all['repurchase'])} customers).")
                owner = "marketing"
            diagnoses.append(Diagnosis(
                "funnel", owner,
                f"The weakest funnel step in {latest} is {step}: {100 * rate:.1f}% "
                f"({int(now_all['browse'])} browse, {int(now_all['add_to_cart'])} add to cart, "
                f"{int(now_all['order'])} order, {int(now_all['repurchase'])} repurchase).",
                why, suggestion, f"{step} {100 * rate:.1f}%", 1 - rate))
        steps = fun[fun["period"] == latest].set_index("channel")[list(funnel.STEPS)].T
        if "funnel" in wanted:
            report.charts.append(Chart(
                "funnel", "funnel", f"Funnel by channel, {latest}", "breakdown", steps,
                "customers", "Distinct customers reaching each step per channel."))
        if role in ("operations", "all"):
            report.breakdowns.append((f"Funnel by channel ({latest})",
                                      fun[fun["period"] == latest]))

    # --- channels (ROI with a cost file)
    if role in ("operations", "marketing", "all"):
        roi = channels.channel_roi(daily, costs, start=first.date(), end=last.date())
        report.breakdowns.append(("Channels this period (uv, clicks, orders, ROI)", roi))
        if costs is not None and not roi.empty:
            bad = roi[roi["roi"] < 0]
            for _, row in bad.iterrows():
                diagnoses.append(Diagnosis(
                    "roi", "marketing",
                    f"Channel {row['channel']} lost money: ROI {row['roi']:.2f} "
                    f"(revenue {_num(row['revenue'], 'revenue')} for cost "
                    f"{_num(row['cost'], 'revenue')}).",
                    f"Why: {int(row['buyers'])} buyers of {int(row['uv'])} visitors "
                    f"({100 * row['conversion_rate']:.1f}% conversion).",
                    f"Cut or retarget the spend on {row['channel']} next period.",
                    f"roi {row['channel']} {row['roi']:.2f}", min(1.0, -row["roi"])))

    # --- satisfaction
    if role in ("service", "all") and not tickets.empty:
        start = pd.Timestamp(first, tz=zone).tz_convert("UTC").to_pydatetime()
        stop = pd.Timestamp(last + pd.Timedelta(days=1), tz=zone).tz_convert("UTC") \
            .to_pydatetime()
        csat = satisfaction.csat_by_issue(tickets, start, stop)
        overall = satisfaction.csat_by_issue(tickets)
        report.breakdowns.append(("CSAT by issue type this period", csat))
        bands = satisfaction.handling_vs_satisfaction(tickets)
        report.breakdowns.append(("Handling time against satisfaction (all live tickets)",
                                  bands))
        rated = csat[csat["rated"] >= MIN_RATED]
        span = "this period"
        if len(rated) < 2:  # too few rated tickets this period: the live tickets (365 days)
            rated, span = overall[overall["rated"] >= MIN_RATED], "over the last 365 days"
        mean = float(tickets["satisfaction"].mean())
        # a finding only when one issue type is clearly worse than the tickets overall
        if len(rated) >= 2 and rated.iloc[0]["csat_mean"] <= mean - CSAT_GAP:
            worst = rated.iloc[0]
            corr = satisfaction.handling_satisfaction_correlation(tickets)
            handling = worst["handling_minutes_mean"]
            median = tickets["handling_minutes"].median()
            why = [f"their mean handling time is {handling:.0f} min against a median of "
                   f"{median:.0f} min over all tickets" if not math.isnan(handling)
                   and not math.isnan(median) else "their handling time is not recorded"]
            if not math.isnan(corr.rho):
                why.append(f"handling time and satisfaction have a rank correlation of "
                           f"{corr.rho:.2f} (n={corr.n})")
            target = (f"target the median handling time of all tickets ({median:.0f} min)"
                      if not math.isnan(median) else "record handling times to find the delay")
            diagnoses.append(Diagnosis(
                "csat", "service",
                f"{worst['issue_type']} tickets have the lowest CSAT {span}: "
                f"{worst['csat_mean']:.2f} ({100 * worst['satisfied_share']:.0f}% satisfied, "
                f"{int(worst['rated'])} rated) against {mean:.2f} over all tickets.",
                "Why: " + "; ".join(why) + ".",
                f"Review the {worst['issue_type']} process and staff the rota for it; {target}.",
                f"CSAT {worst['issue_type']} {worst['csat_mean']:.2f}",
                max(0.0, (mean - worst["csat_mean"]) / 5)))
        trend = satisfaction.complaint_trend(tickets, zone, freq)
        if len(trend) >= 2:
            a, b = trend.iloc[-2], trend.iloc[-1]
            if a["complaints"] >= 5:  # a smaller base says nothing
                pct = 100 * (b["complaints"] - a["complaints"]) / a["complaints"]
                if abs(pct) >= 10:
                    diagnoses.append(Diagnosis(
                        "complaints", "service",
                        f"Complaints {'rose' if pct > 0 else 'fell'} {abs(pct):.1f}% "
                        f"({int(a['complaints'])} in {_period_label(a['period'])} -> "
                        f"{int(b['complaints'])} in {_period_label(b['period'])}).",
                        f"Why: the complaint rate of tickets went from "
                        f"{100 * a['complaint_rate']:.1f}% to {100 * b['complaint_rate']:.1f}%.",
                        "Find the products and issue types behind the new complaints and "
                        "call back the open ones first." if pct > 0 else
                        "Keep the current rota; note what changed for the next report.",
                        f"complaints {_pct(pct)}", abs(pct) / 100))
        report.breakdowns.append(("Complaints per period", trend.tail(8)))
        if not trend.empty:
            series = trend.tail(12).set_index(trend.tail(12)["period"].map(_period_label))
            report.charts.append(Chart(
                "complaints", "line", "Complaints per period", "breakdown",
                series[["complaints", "tickets"]], "tickets",
                "Tickets opened and complaints among them, per local period."))

    if role == "service" and tickets.empty:
        conclusions.append("No support tickets in the workers' state: nothing to diagnose "
                           "for service.")

    # --- baskets, campaign effect (marketing)
    if role in ("marketing", "all"):
        if not shares.empty:
            report.breakdowns.append(("Segments: customers and revenue (365 days)", shares))
        # a pair bought together at least 3 times (support from counts, not a fixed share)
        support = 3 / len(baskets) if len(baskets) else 1.0
        rules = basket.basket_rules(baskets, min_support=support, min_confidence=0.05)
        report.breakdowns.append(("Bought together (pair rules)", rules.head(10)))
        # only triggers that were sent: a move older than the freshness horizon when it was
        # folded (a replay) triggered nobody
        contacts = tables["contacts"]
        contacts = contacts[~contacts["historical"].astype(bool)]
        effect = campaign_effect.campaign_effect(contacts, daily, zone=zone)
        if not effect.empty:
            report.breakdowns.append(("Campaign effect: contacted vs holdout", effect))
            for _, row in effect.iterrows():
                low, high = row["conversion_diff_low"], row["conversion_diff_high"]
                if math.isnan(low):
                    continue
                significant = low > 0 or high < 0
                diagnoses.append(Diagnosis(
                    "campaign", "marketing",
                    f"Campaign {row['action']}: conversion "
                    f"{100 * row['contacted_conversion_rate']:.1f}% "
                    f"contacted vs {100 * row['holdout_conversion_rate']:.1f}% holdout "
                    f"(difference {100 * row['conversion_diff']:+.1f} points, 95% CI "
                    f"{100 * low:+.1f}..{100 * high:+.1f}).",
                    f"Why: {int(row['contacted_n'])} contacted, {int(row['holdout_n'])} held "
                    f"out{'' if significant else '; the interval includes 0'}.",
                    ("Roll it out: the lift is real." if low > 0 else
                     "Stop it: it lowers conversion." if high < 0 else
                     "Keep the holdout and run it longer before deciding."),
                    f"{row['action']} lift {100 * row['conversion_diff']:+.1f} pts",
                    abs(row["conversion_diff"]) if significant else 0.01))
        _clv_part(report, profiles, diagnoses)
        if "region" in profiles:
            report.breakdowns.append((
                "Regions", descriptive.regional_density(profiles, daily, first, last)))

    # --- charts
    window = daily[(daily["day"] > pd.Timestamp(end) - pd.Timedelta(days=90))
                   & (daily["day"] <= pd.Timestamp(end))]
    trend = window.groupby("day").agg(active_customers=("user_id", "nunique"),
                                      buyers=("purchases", lambda s: int((s > 0).sum())))
    report.charts.insert(0, Chart("activity", "line", "Activity trend (last 90 days)",
                                  "key-metrics", trend, "customers per day",
                                  "Active customers and buyers per local day."))
    if "pie" in wanted and not shares.empty:
        pie = shares.set_index("segment")[["revenue"]]
        small = shares.set_index("segment")["revenue_share"] < 0.03
        if small.sum() > 1:  # slivers merged, so labels stay readable
            pie = pd.concat([pie[~small], pd.DataFrame({"revenue": [pie[small]["revenue"].sum()]},
                                                       index=["other"])])
        report.charts.append(Chart("value", "pie", "Revenue by value segment (365 days)",
                                   "breakdown", pie, "", "Share of 365-day revenue per segment."))
    if "heatmap" in wanted:
        recent = attrs[(attrs["day"] >= prev_first) & (attrs["day"] <= last)].copy()
        recent["week"] = recent["day"].dt.to_period("W-SUN").map(
            lambda p: p.start_time.strftime("%m-%d"))
        heat = recent[recent["events"] > 0].pivot_table(
            index="region", columns="week", values="user_id", aggfunc="nunique", fill_value=0)
        if not heat.empty:
            report.charts.append(Chart("regions", "heatmap", "Active customers by region and week",
                                       "breakdown", heat, "active customers",
                                       "Regional density: distinct active customers per week."))
    report.charts = [c for c in report.charts if c.kind in wanted]

    # --- role cut and order
    if role != "all":
        diagnoses = [d for d in diagnoses if d.owner == role]
    diagnoses.sort(key=lambda d: -d.weight)
    report.diagnoses = diagnoses
    leading = [f"{d.what} {d.suggestion}" for d in diagnoses[:3]]
    if role in ("marketing", "all"):
        conclusions += value_lines
    if not leading and not conclusions:
        conclusions.append(f"Nothing for {role} moved beyond the noise {label}; the key "
                           f"metrics below are steady.")
    report.conclusions = (leading + conclusions)[:5]
    return report


def _clv_part(report: Report, profiles: pd.DataFrame, diagnoses: list[Diagnosis]) -> None:
    """Historical CLV (AOV x frequency x lifespan) and the predictive one (BG/NBD and
    Gamma-Gamma over the next :data:`CLV_HORIZON_DAYS` days); valuable customers the model
    thinks are slipping away are a finding."""
    hist = clv.historical_clv(profiles)
    rows = [("customers with orders", hist.n), ("average order value (CNY)", hist.avg_order_value),
            ("purchase frequency (orders per customer per year)", hist.purchase_frequency),
            ("observed lifespan (years)", hist.lifespan_years),
            ("historical CLV per customer (CNY)", hist.clv)]
    table = clv.summary(profiles)
    try:
        bg = clv.fit_bgnbd(table["frequency"], table["recency"], table["T"])
        gg = clv.fit_gamma_gamma(table["frequency"], table["monetary_value"])
    except ValueError as exc:  # too few repeat buyers to fit: said, not hidden
        rows.append(("predictive CLV", f"not fitted: {exc}"))
        report.breakdowns.append(("Customer lifetime value", pd.DataFrame(
            rows, columns=["measure", "value"])))
        return
    pred = clv.predict(table, bg, gg, CLV_HORIZON_DAYS)
    rows += [(f"expected purchases, next {CLV_HORIZON_DAYS} days",
              float(pred["expected_purchases"].sum())),
             (f"expected value, next {CLV_HORIZON_DAYS} days (CNY)",
              float(pred["expected_value"].sum())),
             ("mean P(alive)", float(pred["p_alive"].mean())),
             ("BG/NBD r, alpha, a, b", f"{bg.r:.3g}, {bg.alpha:.3g}, {bg.a:.3g}, {bg.b:.3g}"),
             ("Gamma-Gamma p, q, gamma", f"{gg.p:.3g}, {gg.q:.3g}, {gg.gamma:.3g}")]
    table_rows = [(m, f"{v:,.4g}" if isinstance(v, float) else str(v)) for m, v in rows]
    report.breakdowns.append(("Customer lifetime value", pd.DataFrame(
        table_rows, columns=["measure", "value"])))
    top = pred.sort_values("expected_value", ascending=False).head(10).reset_index()
    report.breakdowns.append((f"Top expected value, next {CLV_HORIZON_DAYS} days", top))
    seg = profiles.set_index("user_id")["segment"] if "segment" in profiles else None
    if seg is None:
        return
    valued = pred.join(seg, how="left")
    keen = valued[valued["segment"].isin(["high_value", "potential"])]
    risk = keen[keen["p_alive"] < AT_RISK_P_ALIVE]
    if len(keen) and len(risk):
        share = len(risk) / len(keen)
        diagnoses.append(Diagnosis(
            "clv", "marketing",
            f"{len(risk)} of {len(keen)} high-value and potential customers "
            f"({100 * share:.0f}%) have P(alive) below {AT_RISK_P_ALIVE:.0%}.",
            f"Why: their purchase rhythm (BG/NBD) says they have gone quiet for longer than "
            f"their own history explains; {float(risk['expected_value'].sum()):,.0f} CNY of "
            f"expected value in the next {CLV_HORIZON_DAYS} days rides on them.",
            f"Contact {'this customer' if len(risk) == 1 else f'these {len(risk)} customers'} "
            f"first (account manager or a personal offer), before they reach churn_risk.",
            f"at-risk valuable customers {len(risk)}", share))


def read_cost_file(path: Any) -> pd.DataFrame:
    """The channel cost file (see :func:`custpulse.processors.analyses.channels.read_costs`)."""
    return channels.read_costs(path)
