"""Channel ROI: reading cost files (CSV, xlsx, Chinese headers) and the per-channel table."""

from __future__ import annotations

import math
from datetime import date, datetime

import openpyxl
import pandas as pd
import pytest

from custpulse.processors.analyses.channels import (
    COST_COLUMNS,
    ROI_COLUMNS,
    channel_roi,
    normalize_costs,
    read_costs,
)


def daily(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user_id, day, channel, browse, add_to_cart, purchases, revenue, returns, events)."""
    cols = ["user_id", "day", "channel", "browse", "add_to_cart", "purchases", "revenue",
            "returns", "events"]
    d = pd.DataFrame(rows, columns=cols)
    d["day"] = pd.to_datetime(d["day"])
    return d


DAILY = daily(
    [
        ("u1", "2026-12-01", "app", 3, 1, 1, 100.10, 0, 5),
        ("u2", "2026-12-02", "app", 1, 0, 0, 0.0, 0, 1),
        ("u1", "2026-12-03", "app", 0, 0, 1, 50.20, 0, 1),
        ("u3", "2026-12-01", "web", 2, 2, 2, 300.00, 0, 6),
        ("u1", "2026-12-05", "web", 0, 0, 0, 0.0, 1, 1),  # a return only: still a visitor
        ("u4", "2026-11-20", "sms", 1, 0, 0, 0.0, 0, 1),
    ]
)
COSTS = pd.DataFrame(
    {
        "channel": ["app", "app", "web", "tv", "web"],
        "cost": [100.0, 50.0, 400.0, 80.0, 999.0],
        "period": [None, "2026-12", "2026-12-03", None, "2026-11"],
    }
)


def by_channel(out: pd.DataFrame) -> dict[str, dict]:
    return {r["channel"]: r for r in out.to_dict("records")}


# --- channel_roi --------------------------------------------------------------------------


def test_channel_roi_over_a_window():
    out = channel_roi(DAILY, COSTS, start="2026-12-01", end=date(2026, 12, 31))
    assert list(out.columns) == ROI_COLUMNS
    assert out["channel"].tolist() == ["web", "app", "tv"]  # revenue descending
    rows = by_channel(out)
    app, web, tv = rows["app"], rows["web"], rows["tv"]
    assert (app["uv"], app["click"], app["order"], app["buyers"]) == (2, 5, 2, 1)
    assert app["conversion_rate"] == 0.5
    assert app["revenue"] == 150.30 and app["cost"] == 150.0
    assert app["roi"] == pytest.approx(0.30 / 150.0, abs=1e-12)
    assert (web["uv"], web["click"], web["order"], web["buyers"]) == (2, 4, 2, 1)
    assert (web["revenue"], web["cost"], web["roi"]) == (300.0, 400.0, -0.25)  # Nov cost left out
    assert (tv["uv"], tv["click"], tv["order"], tv["buyers"], tv["revenue"]) == (0, 0, 0, 0, 0.0)
    assert tv["cost"] == 80.0 and tv["roi"] == -1.0 and math.isnan(tv["conversion_rate"])


def test_channel_roi_over_all_days_without_costs():
    out = channel_roi(DAILY)
    assert out["channel"].tolist() == ["web", "app", "sms"]
    rows = by_channel(out)
    assert rows["sms"]["uv"] == 1 and rows["sms"]["revenue"] == 0.0
    assert out["cost"].isna().all() and out["roi"].isna().all()
    assert out.dtypes.to_dict() == channel_roi(DAILY.iloc[:0]).dtypes.to_dict()


def test_channel_roi_costs_without_a_window_all_apply_and_missing_costs_are_nan():
    out = channel_roi(DAILY, COSTS)
    rows = by_channel(out)
    assert rows["web"]["cost"] == 400.0 + 999.0
    assert math.isnan(rows["sms"]["cost"]) and math.isnan(rows["sms"]["roi"])
    assert out["channel"].tolist() == ["web", "app", "sms", "tv"]  # ties on revenue by name


def test_channel_roi_zero_cost_gives_nan_roi_and_bounds_are_inclusive():
    costs = pd.DataFrame({"channel": ["app"], "cost": [0]})
    out = channel_roi(DAILY, costs, start=datetime(2026, 12, 3), end="2026-12-03")
    assert out["channel"].tolist() == ["app"]
    rows = by_channel(out)
    assert rows["app"]["revenue"] == 50.20 and rows["app"]["cost"] == 0.0
    assert math.isnan(rows["app"]["roi"])


def test_channel_roi_revenue_is_summed_in_cents():
    d = daily([("u1", "2026-12-01", "app", 0, 0, 1, 0.1, 0, 1)] * 3)
    assert channel_roi(d)["revenue"].tolist() == [0.3]


def test_channel_roi_rejects_partial_periods_bad_bounds_and_aware_dates():
    with pytest.raises(ValueError, match="partly inside"):
        channel_roi(DAILY, COSTS, start="2026-12-05")
    with pytest.raises(ValueError):
        channel_roi(DAILY, start="2026-12-05", end="2026-12-01")
    with pytest.raises(ValueError):
        channel_roi(DAILY, start=pd.Timestamp("2026-12-01", tz="Asia/Shanghai"))
    with pytest.raises(ValueError, match="not a number"):
        channel_roi(DAILY, pd.DataFrame({"channel": ["app"], "cost": ["lots"]}))


def test_channel_roi_of_nothing_keeps_the_columns():
    for out in (
        channel_roi(DAILY.iloc[:0]),
        channel_roi(DAILY.iloc[:0], COSTS.iloc[:0]),
        channel_roi(DAILY, start="2030-01-01"),
    ):
        assert list(out.columns) == ROI_COLUMNS and out.empty
        assert out["uv"].dtype == "int64" and out["roi"].dtype == "float64"


# --- read_costs ---------------------------------------------------------------------------


def test_read_costs_csv_with_chinese_headers_and_a_bom(tmp_path):
    path = tmp_path / "costs.csv"
    text = "渠道,费用,周期,备注\napp,\"1,200.50\",2026-12,\nweb,300,2026-12-03,x\n,,,\ntv,¥80,,\n"
    path.write_text(text, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    costs = read_costs(path)
    assert list(costs.columns) == COST_COLUMNS
    assert costs["channel"].tolist() == ["app", "web", "tv"]
    assert costs["cost"].tolist() == [1200.50, 300.0, 80.0]
    assert costs["period"].tolist()[:2] == ["2026-12", "2026-12-03"]
    assert pd.isna(costs["period"].iloc[2])
    out = channel_roi(DAILY, costs, start="2026-12-01", end="2026-12-31")
    assert by_channel(out)["app"]["cost"] == 1200.50


def test_read_costs_csv_plain_utf8_english_headers_without_period(tmp_path):
    path = tmp_path / "costs.csv"
    path.write_text(" Channel , COST \napp,10\nweb,2.5\n", encoding="utf-8")
    costs = read_costs(path)
    assert costs["channel"].tolist() == ["app", "web"]
    assert costs["cost"].tolist() == [10.0, 2.5]
    assert costs["period"].isna().all()


def test_read_costs_xlsx_with_chinese_headers(tmp_path):
    path = tmp_path / "costs.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["渠道", "成本", "周期"])
    ws.append(["app", 150, "2026-12"])
    ws.append(["web", 400.25, datetime(2026, 12, 3)])
    ws.append(["tv", "80", None])
    ws.append([None, None, None])
    wb.save(path)
    costs = read_costs(path)
    assert costs["channel"].tolist() == ["app", "web", "tv"]
    assert costs["cost"].tolist() == [150.0, 400.25, 80.0]
    assert costs["period"].tolist()[:2] == ["2026-12", "2026-12-03"]
    out = channel_roi(DAILY, costs, start="2026-12-01", end="2026-12-31")
    assert by_channel(out)["web"]["cost"] == 400.25


def _csv(tmp_path, text: str, encoding: str = "utf-8-sig", name: str = "costs.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("text", "encoding", "match"),
    [
        ("渠道,周期\napp,2026-12\n", "utf-8-sig", "no cost column"),
        ("cost\n10\n", "utf-8", "no channel column"),
        ("渠道,成本\napp,10\nweb,abc\n", "utf-8-sig", "row 3 .* not a number"),
        ("渠道,成本\napp,\n", "utf-8-sig", "row 2 .* no cost"),
        ("渠道,成本\napp,-5\n", "utf-8-sig", "negative"),
        ("渠道,成本\n,5\n", "utf-8-sig", "no channel"),
        ("渠道,成本,周期\napp,5,Q4\n", "utf-8-sig", "period"),
        ("渠道,成本,费用\napp,5,6\n", "utf-8-sig", "two cost columns"),
        ("渠道,成本\napp,5\n", "gbk", "not UTF-8"),
        ("", "utf-8", "empty"),
    ],
)
def test_read_costs_bad_csv_raises_one_sentence(tmp_path, text, encoding, match):
    with pytest.raises(ValueError, match=match) as err:
        read_costs(_csv(tmp_path, text, encoding))
    message = str(err.value)
    assert message.endswith(".") and "\n" not in message


def test_read_costs_bad_xlsx_and_suffix(tmp_path):
    broken = tmp_path / "costs.xlsx"
    broken.write_bytes(b"not a workbook")
    with pytest.raises(ValueError, match="not a readable xlsx"):
        read_costs(broken)
    with pytest.raises(ValueError, match="neither .csv nor .xlsx"):
        read_costs(_csv(tmp_path, "channel,cost\napp,1\n", name="costs.txt"))
    path = tmp_path / "bad.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["渠道", "费用"])
    wb.active.append(["app", "十元"])
    wb.save(path)
    with pytest.raises(ValueError, match="row 2 of costs file bad.xlsx has a cost that is not"):
        read_costs(path)


def test_normalize_costs_of_an_empty_table_keeps_the_columns():
    out = normalize_costs(pd.DataFrame(columns=["渠道", "成本"]))
    assert list(out.columns) == COST_COLUMNS and out.empty
