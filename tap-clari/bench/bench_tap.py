"""Throughput and memory of tap-clari on one large export, against a plain loop over the same results.

    python bench/bench_tap.py [--entries 200000] [--runs 1]

Starts tests/fake_api.py with one Forecast Tab whose export of the current quarter has ``--entries`` entries, then
runs, each in its own process with stdout to /dev/null:

* the tap CLI (``tap-clari --config ...``: the whole export job, all five streams, users pseudonymized), and
* a plain loop (this file with --plain-loop): the same POST, polls and results download with one
  ``requests.Session``, ``json.loads(..., parse_float=Decimal)``, and one ``json.dumps`` line per entry: the limit
  of "download, parse exactly and print" on this machine.

It reports wall time, entries/s and peak RSS (os.wait4 rusage of the child), and the tap's peak RSS against the size
of the results document. Goals (issue 13): at least a third of the plain loop's entries/s, and peak RSS under four
times the document's size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from harborline_singer_shared.testing.bench import run_measured
from harborline_singer_shared.testing.processes import start_url_server

HERE = Path(__file__).resolve().parent
FAKE_API = HERE.parent / "tests" / "fake_api.py"
API_KEY = "bench-api-key-0123456789"
FORECAST = "net_bookings"
PERIOD = "2025_Q1"
PSEUDONYMIZATION_KEY = "bench-pseudonymization-key-0123456789"


def export_results(session: object, base_url: str) -> bytes:
    """POST the export, poll until DONE, download the results; the raw document."""
    import requests  # noqa: PLC0415 - only the child processes need it

    assert isinstance(session, requests.Session)
    job = session.post(
        f"{base_url}/export/forecast/{FORECAST}",
        json={"timePeriod": PERIOD, "includeHistorical": True, "exportFormat": "JSON"},
        timeout=600,
    ).json()
    job_id = job["jobId"]
    while True:
        status = session.get(f"{base_url}/export/jobs/{job_id}", timeout=600).json()
        status = status.get("job", status)["status"]
        if status == "DONE":
            break
        if status not in {"SCHEDULED", "STARTED"}:
            raise SystemExit(f"job {job_id} ended {status}")
    return session.get(f"{base_url}/export/jobs/{job_id}/results", timeout=600).content


def plain_loop(base_url: str) -> None:
    """Download the same results, parse them with Decimal and print one JSON line per entry."""
    import requests  # noqa: PLC0415

    session = requests.Session()
    session.headers["apikey"] = API_KEY
    body = export_results(session, base_url)
    document = json.loads(body, parse_float=Decimal)
    out = sys.stdout
    count = 0
    for entry in document["entries"]:
        out.write(json.dumps(entry, default=str) + "\n")
        count += 1
    out.flush()
    print(f"PLAIN_RECORDS {count} BYTES {len(body)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=1, help="best of N for each side")
    parser.add_argument("--plain-loop", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(args.plain_loop)
        return

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmpdir = Path(tmp)
        url = start_url_server(
            [
                str(FAKE_API),
                "--entries",
                str(args.entries),
                "--forecasts",
                FORECAST,
                "--current-period",
                PERIOD,
                "--api-key",
                API_KEY,
                "--polls",
                "3",
            ],
            tmpdir / "fake_api.log",
            stack,
        )
        config = tmpdir / "config.json"
        config.write_text(
            json.dumps(
                {
                    "api_url": url,
                    "api_key": API_KEY,
                    "forecast_ids": [FORECAST],
                    "time_periods": [PERIOD],
                    "poll_interval_seconds": 0,
                    "pseudonymization_key": PSEUDONYMIZATION_KEY,
                }
            ),
            encoding="utf-8",
        )
        tap_cmd = [str(Path(sys.executable).with_name("tap-clari")), "--config", str(config)]
        if not Path(tap_cmd[0]).exists():
            tap_cmd = ["tap-clari", "--config", str(config)]
        plain_cmd = [sys.executable, __file__, "--plain-loop", url]
        # Warm-up: the fake builds the document on first use; neither side should pay for that.
        run_measured(plain_cmd, stderr_path=tmpdir / "warmup.err")
        tap_best = plain_best = None
        document_bytes = 0
        for _ in range(args.runs):
            seconds, rss, err = run_measured(tap_cmd, stderr_path=tmpdir / "tap.err")
            counts = re.findall(r'"metric":"record_count","value":(\d+),"tags":\{"stream":"forecast_entries"', err)
            records = sum(int(c) for c in counts)
            if tap_best is None or seconds < tap_best[0]:
                tap_best = (seconds, rss, records)
            seconds, rss, err = run_measured(plain_cmd, stderr_path=tmpdir / "plain.err")
            match = re.search(r"PLAIN_RECORDS (\d+) BYTES (\d+)", err)
            records, document_bytes = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
            if plain_best is None or seconds < plain_best[0]:
                plain_best = (seconds, rss, records)

    if tap_best is None or plain_best is None:
        raise SystemExit("no runs")
    document_mib = document_bytes / 2**20
    print(f"one export of {args.entries} entries; results document {document_mib:.1f} MiB")
    print(f"| {'reader':<20} | {'entries':>8} | {'seconds':>8} | {'entries/s':>10} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 22}|{'-' * 10}|{'-' * 10}|{'-' * 12}|{'-' * 14}|")
    for name, (seconds, rss, records) in (("tap-clari", tap_best), ("plain loop", plain_best)):
        print(f"| {name:<20} | {records:>8} | {seconds:>8.2f} | {records / seconds:>10.0f} | {rss:>12.1f} |")
    ratio = (tap_best[2] / tap_best[0]) / (plain_best[2] / plain_best[0])
    print(f"tap / plain loop entries/s: {ratio:.2f} (goal: at least 0.33)")
    if document_bytes:
        print(f"tap peak RSS / document size: {tap_best[1] / document_mib:.2f} (goal: under 4)")
    if tap_best[2] != plain_best[2]:
        print(f"WARNING: entry counts differ ({tap_best[2]} vs {plain_best[2]})")


if __name__ == "__main__":
    main()
