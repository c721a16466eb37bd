"""The report: five parts, every chart embedded, conclusions generated from the data (they
change with it and quote the analyses' numbers), role cuts, the summary table's columns."""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd
import pytest

from custpulse.processors.analyses import descriptive
from custpulse.processors.report import ROLES, SUMMARY_COLUMNS, build_report, last_complete_day
from custpulse.streams.report_html import write_report

from .folded_history import ZONE, folded_tables

SECTIONS = ("core-conclusion", "key-metrics", "breakdown", "problem-diagnosis", "suggestions")


@pytest.fixture(scope="module")
def tables():
    return folded_tables()


def _section(page: str, name: str) -> str:
    match = re.search(rf"<section id='{name}'>(.*?)</section>", page, re.S)
    assert match, name
    return match.group(1)


@pytest.mark.parametrize("period", ["week", "month"])
def test_all_five_parts_and_every_chart_offline(tables, period, tmp_path):
    report = build_report(tables, period=period, role="all", zone=ZONE)
    page_path, summary_path = write_report(report, tmp_path, progress=False)
    page = page_path.read_text(encoding="utf-8")
    for name in SECTIONS:
        assert _section(page, name).strip()
    assert "<li>" in _section(page, "core-conclusion")
    assert "<li>" in _section(page, "problem-diagnosis")
    assert "<li>" in _section(page, "suggestions")
    kinds = set(re.findall(r"data-kind='(\w+)'><img alt='[^']*' src='data:image/png;base64,",
                           page))
    assert kinds == {"line", "pie", "heatmap", "funnel"}
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing fetched: opens offline
    assert "<script" not in page
    summary = pd.read_csv(summary_path, encoding="utf-8-sig")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == len(report.diagnoses) > 0
    assert summary_path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert set(summary["owner"]) <= {"marketing", "operations", "service"}


def test_the_movers_quote_the_period_over_period_numbers(tables):
    report = build_report(tables, period="month", role="all", zone=ZONE)
    end = last_complete_day(tables["profiles"], ZONE)
    assert report.end_day == end
    pop = descriptive.period_over_period(tables["daily"], pd.Timestamp(end), "month")
    movers = descriptive.biggest_movers(pop, n=3)
    texts = [d.text for d in report.diagnoses if d.topic == "movers"]
    assert len(texts) == len(movers)
    for (_, row), text in zip(movers.iterrows(), texts, strict=True):
        direction = "rose" if row["change"] > 0 else "fell"
        assert f"{direction} {abs(row['change_pct']):.1f}%" in text


def test_conclusions_follow_the_data_not_a_template(tables):
    end = last_complete_day(tables["profiles"], ZONE)
    first = pd.Timestamp(end) - timedelta(days=6)
    before = build_report(tables, period="week", role="marketing", zone=ZONE)
    # the same state, but this week's purchases and revenue are gone
    cut = dict(tables)
    daily = tables["daily"].copy()
    week = daily["day"] >= first
    daily.loc[week, ["purchases", "revenue"]] = 0
    cut["daily"] = daily
    after = build_report(cut, period="week", role="marketing", zone=ZONE)
    assert before.conclusions != after.conclusions
    assert any("fell 100.0%" in line for line in after.conclusions)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "all"])
def test_each_role_gets_its_own_cut(tables, role):
    report = build_report(tables, period="month", role=role, zone=ZONE)
    assert {d.owner for d in report.diagnoses} <= {role}
    kinds = {c.kind for c in report.charts}
    assert "line" in kinds
    if role == "operations":
        assert "funnel" in kinds and "pie" not in kinds
    if role == "marketing":
        assert "pie" in kinds and "funnel" not in kinds
    titles = " ".join(t for t, _ in report.breakdowns)
    if role == "service":
        assert "CSAT" in titles and "Funnel" not in titles
    else:
        assert "CSAT" not in titles


def test_bad_arguments_are_value_errors(tables):
    with pytest.raises(ValueError, match="period"):
        build_report(tables, period="year", role="all", zone=ZONE)
    with pytest.raises(ValueError, match="role"):
        build_report(tables, period="week", role="ceo", zone=ZONE)
    empty = {k: v.iloc[:0] for k, v in tables.items()}
    with pytest.raises(ValueError, match="no activity"):
        build_report(empty, period="week", role="all", zone=ZONE)


def test_edges_found_in_review(tables):
    end = last_complete_day(tables["profiles"], ZONE)
    # a source channel literally called "all" does not break the funnel
    odd = dict(tables)
    odd["daily"] = tables["daily"].assign(
        channel=tables["daily"]["channel"].replace("app", "all"))
    report = build_report(odd, period="week", role="operations", zone=ZONE)
    assert report.conclusions
    # the funnel is the report's own window, whatever weekday --end is
    monday = end - timedelta(days=(end.weekday()))
    report = build_report(tables, period="week", role="operations", zone=ZONE, end_day=monday)
    window = f"{monday - timedelta(days=6)}..{monday}"
    assert any(window in t for t, _ in report.breakdowns)
    # no data on or before --end: one clear error
    with pytest.raises(ValueError, match="no activity on or before"):
        build_report(tables, period="week", role="all", zone=ZONE,
                     end_day=tables["daily"]["day"].min().date() - timedelta(days=1))
    # no tickets: the service report says so instead of staying empty
    quiet = dict(tables)
    quiet["tickets"] = tables["tickets"].iloc[:0]
    report = build_report(quiet, period="month", role="service", zone=ZONE)
    assert report.conclusions and "No support tickets" in report.conclusions[-1]


def test_a_csat_finding_names_an_issue_type_only_when_it_is_clearly_worse(tables):
    flat = dict(tables)
    tickets = tables["tickets"].copy()
    tickets["satisfaction"] = 4.0  # every issue type the same: nothing to diagnose
    flat["tickets"] = tickets
    report = build_report(flat, period="month", role="service", zone=ZONE)
    assert not [d for d in report.diagnoses if d.topic == "csat"]
    worse = tickets.copy()
    kind = "refund"  # 16 rated tickets in the fixture, inquiry 13: two types qualify
    assert (worse[worse["issue_type"] == kind]["satisfaction"].notna().sum() >= 10)
    worse.loc[worse["issue_type"] == kind, "satisfaction"] = 1.0
    flat["tickets"] = worse
    report = build_report(flat, period="month", role="service", zone=ZONE)
    found = [d for d in report.diagnoses if d.topic == "csat"]
    assert found and found[0].what.startswith(f"{kind} tickets have the lowest CSAT")


@pytest.mark.parametrize("command", [["report"], ["export", "--format", "csv"]])
def test_a_bad_out_folder_is_one_sentence_before_any_server_is_asked(command, tmp_path, capsys):
    from custpulse.streams.cli import main

    afile = tmp_path / "taken"
    afile.write_text("x")
    assert main([*command, "--out", str(afile), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("custpulse: ") and "\n" not in err and "folder" in err
