"""``custpulse import`` of an Excel workbook on the real stack: the rows of the chosen sheet
reach the worker and Redis with their Chinese text and their types."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import redis
from openpyxl import Workbook

from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles

from .conftest import WorkerProcess, run_cli, wait_drained


def test_an_xlsx_sheet_is_imported_and_folded(settings: Settings, worker: WorkerProcess,
                                               tmp_path: Path):
    book = Workbook()
    notes = book.active
    notes.title = "说明"
    notes.append(["这一页不是订单"])
    orders = book.create_sheet("订单")
    orders.append(["user_id", "order_id", "order_time", "amount", "status", "channel"])
    orders.append(["X1", "O1", datetime(2026, 3, 1, 9, 30), 128.5, "paid", "小程序"])
    orders.append(["X1", "O2", datetime(2026, 3, 5, 20, 0), 71.5, "paid", "APP"])
    orders.append(["X2", "O3", "2026-03-02 10:00:00", 99, "paid", "APP"])
    path = tmp_path / "订单.xlsx"
    book.save(path)

    worker.env.update(CUSTPULSE_IDLE_TIMEOUT_S="2")
    worker.start()
    result = run_cli(settings, "import", "orders", str(path), "--sheet", "订单", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "rows read 3, sent 3, dead-lettered 0, failed 0" in result.stdout, result.stdout
    wait_drained(settings, worker)
    profiles = scan_profiles(redis.Redis.from_url(settings.redis_url), settings)
    assert profiles["X1"]["orders_total"] == "2" and profiles["X2"]["orders_total"] == "1"
    assert profiles["X1"]["monetary_total"] == "200.0"
    assert "mini_program" in profiles["X1"]["active_channels"]  # 小程序, standardized
    # the shipped zone reads Excel's offset-less times as China time
    assert profiles["X1"]["first_order_at"] == "2026-03-01T01:30:00.000+00:00"
