"""Render a :class:`~custpulse.processors.report.Report` as one self-contained HTML file
(charts as embedded PNG, no script, no CDN: it opens offline) and its summary table as CSV
(UTF-8 with a byte-order mark, for Excel). Charts: matplotlib's Agg backend, plain 2-D."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from custpulse.processors.report import SUMMARY_COLUMNS, Chart, Report  # noqa: E402
from custpulse.state.exports import check_folder, guarded  # noqa: E402

_CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "SimHei",
              "Microsoft YaHei", "DejaVu Sans"]

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#222;background:#fff}
h1{font-size:24px;border-bottom:2px solid #2b6cb0;padding-bottom:6px}
h2{font-size:19px;color:#2b6cb0;margin-top:28px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#edf2f7}td:first-child,th:first-child{text-align:left}
.up{color:#2f855a}.down{color:#c53030}
.meta{color:#666;font-size:13px}
figure{margin:8px 0 16px}figcaption{font-size:13px;color:#555}
li{margin:4px 0}
"""


def chart_png(chart: Chart) -> bytes:
    """One chart as PNG bytes."""
    plt.rcParams["font.sans-serif"] = _CJK_FONTS
    plt.rcParams["axes.unicode_minus"] = False
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=90)
    data = chart.data
    if chart.kind == "line":
        for column in data.columns:
            ax.plot(data.index, data[column], marker="o", markersize=3, label=str(column))
        ax.set_ylabel(chart.ylabel)
        ax.grid(alpha=0.3)
        if len(data.columns) > 1:
            ax.legend(fontsize=8)
        fig.autofmt_xdate()
    elif chart.kind == "pie":
        series = data.iloc[:, 0]
        series = series[series > 0]
        ax.pie(series.values, labels=[str(i) for i in series.index], autopct="%1.1f%%",
               startangle=90, counterclock=False, textprops={"fontsize": 9})
        ax.axis("equal")
    elif chart.kind == "heatmap":
        image = ax.imshow(data.values.astype(float), aspect="auto", cmap="Blues")
        ax.set_xticks(range(len(data.columns)), [str(c) for c in data.columns], rotation=45,
                      ha="right", fontsize=8)
        ax.set_yticks(range(len(data.index)), [str(i) for i in data.index], fontsize=9)
        fig.colorbar(image, ax=ax, label=chart.ylabel)
    elif chart.kind == "funnel":
        steps = [str(i) for i in data.index]
        for k, column in enumerate(data.columns):
            width = 0.8 / max(1, len(data.columns))
            ax.barh([y + k * width for y in range(len(steps))], data[column].values,
                    height=width, label=str(column))
        ax.set_yticks([y + 0.4 - 0.4 / max(1, len(data.columns)) for y in range(len(steps))],
                      steps)
        ax.invert_yaxis()
        ax.set_xlabel(chart.ylabel)
        ax.legend(fontsize=8)
    else:
        raise ValueError(f"unknown chart kind {chart.kind!r}")
    ax.set_title(chart.title, fontsize=12)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table(frame: pd.DataFrame, max_rows: int = 15) -> str:
    shown = frame.head(max_rows)
    return shown.to_html(index=False, border=0, na_rep="–", float_format=_number, escape=True)


def _number(value: float) -> str:
    """Numbers as people read them: thousands separated, four significant digits below 1000."""
    if value != value:  # NaN
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def render_html(report: Report, charts: dict[str, bytes]) -> str:
    """The report page; ``charts``: PNG bytes per chart name."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
             f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{esc(report.title)}</h1>",
             f"<p class='meta'>{esc(report.meta)}</p>"]

    def figure(name: str) -> str:
        chart = next(c for c in report.charts if c.name == name)
        data = base64.b64encode(charts[name]).decode()
        return (f"<figure id='chart-{esc(name)}' data-kind='{esc(chart.kind)}'>"
                f"<img alt='{esc(chart.title)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(chart.caption)}</figcaption></figure>")

    parts.append("<section id='core-conclusion'><h2>1. 核心结论 Core conclusion</h2><ul>")
    parts += [f"<li>{esc(line)}</li>" for line in report.conclusions]
    parts.append("</ul></section>")
    parts.append("<section id='key-metrics'><h2>2. 关键指标 Key metrics "
                 f"({esc(report.change_label)})</h2>")
    parts.append(_table(report.metrics, 30))
    parts += [figure(c.name) for c in report.charts if c.section == "key-metrics"]
    parts.append("</section>")
    parts.append("<section id='breakdown'><h2>3. 维度拆解 Breakdown by dimension</h2>")
    for title, frame in report.breakdowns:
        parts.append(f"<h3>{esc(title)}</h3>{_table(frame)}")
    parts += [figure(c.name) for c in report.charts if c.section == "breakdown"]
    parts.append("</section>")
    parts.append("<section id='problem-diagnosis'><h2>4. 问题诊断 Problem diagnosis</h2><ul>")
    parts += [f"<li>{esc(d.text)}</li>" for d in report.diagnoses]
    parts.append("</ul></section>")
    parts.append("<section id='suggestions'><h2>5. 改进建议 Suggestions</h2><ul>")
    seen: set[tuple[str, str]] = set()
    for d in report.diagnoses:  # the same action for several findings is listed once
        if (d.owner, d.suggestion) not in seen:
            seen.add((d.owner, d.suggestion))
            parts.append(f"<li><b>{esc(d.owner)}</b>: {esc(d.suggestion)} "
                         f"<span class='meta'>({esc(d.key_metric)})</span></li>")
    parts.append("</ul></section></body></html>")
    return "\n".join(parts)


def write_report(report: Report, out: Path, progress: bool = True) -> tuple[Path, Path]:
    """Write ``report-<role>-<period>-<date>.html`` and the summary CSV next to it."""
    check_folder(out)
    bar = None
    if progress:
        import sys  # noqa: PLC0415

        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(report.charts) + 2, desc="building the report", unit="step",
                   file=sys.stderr, leave=False)
    charts = {}
    for chart in report.charts:
        charts[chart.name] = chart_png(chart)
        if bar is not None:
            bar.update(1)
    stem = f"report-{report.role}-{report.period}-{report.end_day.isoformat()}"
    page = out / f"{stem}.html"
    page.write_text(render_html(report, charts), encoding="utf-8")
    if bar is not None:
        bar.update(1)
    summary = out / f"{stem}-summary.csv"
    # text that starts like a formula is guarded, as in the exports
    guarded(report.summary().reindex(columns=list(SUMMARY_COLUMNS))).to_csv(
        summary, index=False, encoding="utf-8-sig")
    if bar is not None:
        bar.update(1)
        bar.close()
    return page, summary
