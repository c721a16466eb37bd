"""The ``custpulse`` command line. Errors are one sentence on stderr, exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path

from custpulse.errors import CustpulseError, InputError
from custpulse.settings import SOURCES, Settings, load_settings


def _end_date(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    return datetime.combine(day, time(0), tzinfo=UTC)


def import_inputs(tokens: Sequence[str]) -> list[tuple[str, Path]]:
    """The ``(source, file)`` pairs of ``custpulse import``'s arguments: ``SOURCE FILE`` (one
    file) or ``SOURCE=FILE ...`` (several).

    >>> [(s, str(p)) for s, p in import_inputs(["orders", "a.csv"])]
    [('orders', 'a.csv')]
    >>> [(s, str(p)) for s, p in import_inputs(["orders=a.csv", "tickets=t.jsonl"])]
    [('orders', 'a.csv'), ('tickets', 't.jsonl')]
    """
    if len(tokens) == 2 and tokens[0] in SOURCES:
        return [(tokens[0], Path(tokens[1]))]
    pairs = []
    for token in tokens:
        source, sep, name = token.partition("=")
        if not sep or source not in SOURCES or not name:
            raise InputError(
                f"Cannot read the import argument {token!r}: give SOURCE FILE, or SOURCE=FILE "
                f"for each file (SOURCE one of {', '.join(SOURCES)}), or --dir DIR."
            )
        pairs.append((source, Path(name)))
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="custpulse",
        description="Real-time customer analytics on Kafka, Faust and Redis. "
        "Configuration comes from the environment (see docs/contract.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run the stream worker (Faust) until stopped")
    worker.add_argument("--log-level", choices=["crit", "error", "warn", "info", "debug"])
    worker.add_argument("--mapping", help="YAML field mapping merged over the shipped defaults")
    worker.add_argument(
        "--role", choices=["all", "ingest", "fold", "trainer"],
        help="all (default, CUSTPULSE_ROLE): ingest and fold in this process; ingest: raw "
        "topics -> <prefix>events only; fold: <prefix>events -> table, Redis, alerts only; "
        "trainer: the churn model's trainer")

    imp = sub.add_parser(
        "import",
        help="send CSV, JSON-lines or Excel (.xlsx) files to their sources' topics, merged by "
        "event time",
        description="SOURCE FILE imports one file; SOURCE=FILE ... and --dir DIR import several "
        "files as one stream merged by event time across sources.",
    )
    imp.add_argument(
        "inputs", nargs="*", metavar="SOURCE FILE | SOURCE=FILE ...",
        help=f"SOURCE is one of {', '.join(SOURCES)}; FILE is .csv, .jsonl or .xlsx",
    )
    imp.add_argument(
        "--dir", type=Path, dest="folder", metavar="DIR",
        help="also import every <source>[_-.anything].csv/.jsonl file of DIR",
    )
    imp.add_argument("--keep-order", action="store_true",
                     help="send file after file, each in file order, unsorted")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.add_argument("--mapping", help="YAML field mapping merged over the shipped defaults")
    imp.add_argument("--sheet", help="the sheet of .xlsx workbooks to read (default: the first)")

    gen = sub.add_parser("generate", help="synthetic customers and events, to files or topics")
    gen.add_argument("--customers", type=int, default=200, help="number of customers")
    gen.add_argument("--months", type=int, default=6, help="months of history before --end")
    gen.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    gen.add_argument(
        "--end", type=_end_date, default=None,
        help="last day of the history, YYYY-MM-DD, midnight UTC (default: today)",
    )
    gen.add_argument("--churn-share", type=float, default=0.2, help="share of churners 0..1")
    target = gen.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, help="folder to write one file per source into")
    target.add_argument("--to-topics", action="store_true", help="send straight to the topics")
    gen.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    gen.add_argument("--no-progress", action="store_true")

    topics = sub.add_parser("topics", help="list custpulse topics with partitions and messages")
    topics.add_argument("--create", action="store_true", help="create missing topics first")

    lag = sub.add_parser("lag", help="consumer-group lag per topic and partition")
    lag.add_argument("--group", help="consumer group (default: the app id)")

    segs = sub.add_parser("segments", help="the tag library and current segment sizes")
    segs.add_argument("--library", help="YAML tag library (default: CUSTPULSE_SEGMENTS or shipped)")

    model = sub.add_parser("model", help="the churn model")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    model_status = model_sub.add_parser(
        "status", help="the newest published churn model: version, labels, quality, weights")
    model_status.add_argument("--json", action="store_true", help="one JSON object")

    export = sub.add_parser(
        "export", help="write profiles and analysis aggregates as Parquet, xlsx or CSV files",
        description="Reads the workers' state (the profiles changelog) and writes one file per "
        "table (docs/analysis-tables.md).")
    export.add_argument("--format", choices=["parquet", "xlsx", "csv"], default="parquet")
    export.add_argument("--out", type=Path, required=True, help="folder to write into")
    export.add_argument("--no-progress", action="store_true")

    clv = sub.add_parser(
        "clv", help="fit BG/NBD and Gamma-Gamma on the profiles and write CLV into Redis")
    clv.add_argument("--horizon-days", type=float, default=90.0,
                     help="prediction horizon in days (default 90)")
    clv.add_argument("--json", action="store_true", help="one JSON object")
    clv.add_argument("--no-write", action="store_true",
                     help="do not write the predictions into the Redis profile hashes")
    clv.add_argument("--no-progress", action="store_true")

    report = sub.add_parser(
        "report", help="the periodic report: one offline HTML file and a summary CSV")
    report.add_argument("--period", choices=["week", "month"], default="week")
    report.add_argument("--role", choices=["marketing", "operations", "service", "all"],
                        default="all")
    report.add_argument("--out", type=Path, required=True, help="folder to write into")
    report.add_argument("--end", type=date.fromisoformat, default=None,
                        help="last local day of the period, YYYY-MM-DD (default: the latest "
                        "day in the data)")
    report.add_argument("--costs", type=Path, default=None,
                        help="channel cost file (CSV or xlsx: channel, cost) for ROI")
    report.add_argument("--no-progress", action="store_true")

    prof = sub.add_parser("profile", help="one live profile (masked) with its as_of, from Redis")
    prof.add_argument("user_id", metavar="USER_ID")
    prof.add_argument("--json", action="store_true", help="one JSON object")

    status = sub.add_parser("status", help="what the worker has built: counts and profiles")
    status.add_argument("--profiles", type=int, default=3, help="sample profiles to print")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(**_overrides(args))
        return _run(args, settings)
    except CustpulseError as exc:
        print(f"custpulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """Settings the command line gives (they win over the environment)."""
    if args.command != "worker":
        return {}
    return {k: v for k, v in (("mapping", args.mapping), ("role", args.role)) if v}


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "worker":
        from custpulse.streams.worker import run_worker

        return run_worker(settings, args.log_level)
    if args.command == "import":
        import logging  # noqa: PLC0415

        from custpulse.streams.importer import files_in_dir, import_files

        # the import reports what went wrong in its own words (one sentence, the summary
        # lines); the Kafka client's connection warnings would only repeat it
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        files = import_inputs(args.inputs)
        if args.folder is not None:
            files += files_in_dir(args.folder)
        summaries = import_files(
            settings, files, args.keep_order,
            progress=not args.no_progress, mapping_path=args.mapping, sheet=args.sheet,
        )
        for summary in summaries:
            print(summary.line())
        return 0 if all(s.failed == 0 for s in summaries) else 1
    if args.command == "model":
        import logging  # noqa: PLC0415

        from custpulse.streams.status import print_model_status

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # errors: one sentence
        return print_model_status(settings, as_json=args.json)
    if args.command == "generate":
        from custpulse.streams.generate import generate_command

        return generate_command(settings, args)
    if args.command == "topics":
        from custpulse.streams.admin import describe_topics, ensure_topics

        if args.create:
            created = ensure_topics(settings)
            print(f"created: {', '.join(created) or 'none (all exist)'}")
        print(f"{'topic':<48} {'partitions':>10} {'messages':>10}")
        for info in describe_topics(settings):
            print(f"{info.name:<48} {info.partitions:>10} {info.messages:>10}")
        return 0
    if args.command == "lag":
        from custpulse.streams.admin import consumer_lag

        rows = consumer_lag(settings, args.group)
        print(f"group {args.group}" if args.group else
              f"groups {settings.ingest_group} (input topics) and {settings.app_id} "
              f"({settings.events_topic})")
        print(f"{'topic':<40} {'partition':>9} {'committed':>10} {'end':>10} {'lag':>8}")
        for r in rows:
            done = "-" if r.committed is None else str(r.committed)
            print(f"{r.topic:<40} {r.partition:>9} {done:>10} {r.end:>10} {r.lag:>8}")
        print(f"total lag {sum(r.lag for r in rows)}")
        return 0
    if args.command == "segments":
        from custpulse.streams.status import print_segments

        return print_segments(settings, args.library)
    if args.command in ("export", "clv", "report"):
        import logging  # noqa: PLC0415

        from custpulse.streams import analysis_cli

        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # errors: one sentence
        progress = not args.no_progress
        if args.command == "export":
            return analysis_cli.export_command(settings, args.format, args.out, progress)
        if args.command == "clv":
            return analysis_cli.clv_command(settings, args.horizon_days, args.json,
                                            not args.no_write, progress)
        return analysis_cli.report_command(settings, args.period, args.role, args.out,
                                           args.end, args.costs, progress)
    if args.command == "profile":
        from custpulse.streams.status import print_profile

        return print_profile(settings, args.user_id, args.json)
    if args.command == "status":
        from custpulse.streams.status import print_status

        return print_status(settings, args.profiles)
    raise InputError(f"unknown command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
