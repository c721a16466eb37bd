"""``make demo``: the main job on the local stack, end to end, in about a minute.

Starts a worker, generates a few months of events for a few hundred customers into files,
imports them, waits until the worker has folded every event, prints what it saw, and stops
the worker. Kafka and Redis keep running (``make stack-down`` stops them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from custpulse.errors import CustpulseError
from custpulse.settings import SOURCES, Settings, load_settings
from custpulse.streams.admin import consumer_lag, ensure_topics
from custpulse.streams.generate import default_end, generated_files
from custpulse.streams.importer import import_file
from custpulse.streams.status import print_status

CUSTOMERS = int(os.environ.get("DEMO_CUSTOMERS", "100"))
MONTHS = int(os.environ.get("DEMO_MONTHS", "3"))
SEED = int(os.environ.get("DEMO_SEED", "7"))
TIMEOUT_S = 300


def _wait_drained(settings: Settings, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise CustpulseError(f"the worker stopped (exit {worker.returncode}); see {log}.")
        lag = sum(r.lag for r in consumer_lag(settings))
        print(f"\rworker lag: {lag:>8} messages", end="", flush=True)
        if lag == 0:
            print()
            return
        time.sleep(1)
    raise CustpulseError(f"the worker did not catch up within {TIMEOUT_S} s; see {log}.")


def run_demo() -> int:
    settings = load_settings()
    root = Path.cwd()
    data = root / "demo-data"
    log = root / ".stack" / "logs" / "demo-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    print(f"== starting the worker (log: {log.relative_to(root)})")
    cli = str(Path(sys.executable).with_name("custpulse"))
    env = dict(os.environ)
    if settings.uses_dev_secret():
        env["CUSTPULSE_ENV"] = "dev"  # a local demo; production sets CUSTPULSE_PII_SECRET
    with log.open("ab") as out:
        worker = subprocess.Popen(  # noqa: S603
            [cli, "worker"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        end = default_end()
        print(f"== generating {CUSTOMERS} customers, {MONTHS} months to {end.date()} "
              f"(seed {SEED}) into {data.relative_to(root)}/")
        files = generated_files(CUSTOMERS, MONTHS, end, SEED, 0.2, "jsonl")
        data.mkdir(exist_ok=True)
        for source in SOURCES:
            (data / f"{source}.jsonl").write_bytes(files[source])
        print("== importing (sorted by event time; ids from file hash and row number)")
        for source in SOURCES:
            print(import_file(settings, source, data / f"{source}.jsonl").line())
        print("== waiting for the worker to fold every event")
        _wait_drained(settings, worker, log)
        print("== what custpulse saw")
        status = print_status(settings, 3)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    print("\nThe worker is stopped; Kafka and Redis are still running "
          "(`make stack-down` stops them, `make stack-reset` also wipes their data).")
    print("Run it again: the same files import as repeats and change no count.")
    return status


def main() -> int:
    try:
        return run_demo()
    except CustpulseError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
