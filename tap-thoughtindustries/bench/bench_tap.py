"""Throughput of tap-thoughtindustries against a plain `requests` loop over the same pages.

    python bench/bench_tap.py [--events 200000] [--window-days 1] [--runs 1]

Starts tests/fake_api.py with the given number of events over 90 days, then runs

* the tap CLI (`tap-thoughtindustries --config ...`, stdout to /dev/null), and
* a plain loop (this file with --plain-loop) that requests the same windows and pages with one
  `requests.Session` and prints every record as a JSON line (also to /dev/null): the limit of
  "fetch and print" on this machine,

each in its own process, measuring wall time, records/s and peak RSS (os.wait4 rusage of that
child). Pacing is effectively off (requests_per_minute very high), so both are CPU bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harborline_singer_shared.testing.bench import run_measured
from harborline_singer_shared.testing.processes import start_url_server

HERE = Path(__file__).resolve().parent
FAKE_API = HERE.parent / "tests" / "fake_api.py"
API_KEY = "bench-api-key-0123456789"
END = datetime(2024, 7, 1, tzinfo=UTC)
DAYS = 90
EVENT_ENDPOINTS = [
    "courseCompletion",
    "courseAction",
    "courseView",
    "login",
    "visit",
    "coursePurchase",
    "learningPathAction",
    "emailCapture",
    "redemptionCodeRedeem",
    "courseEnrollment",
    "courseCertificate",
]
CURSOR_ENDPOINTS = {
    "users": "users",
    "content": "contentItems",
    "meetings": "meetings",
    "clients": "clients",
    "assessmentAttempts": "assessmentAttempts",
    "coupons": "coupons",
}


def _ms(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _iso_to_ms(text: str) -> int:
    return _ms(datetime.fromisoformat(text))


def plain_loop(base_url: str, window_days: float) -> None:
    """Fetch every page the tap fetches and print each record; the reference speed."""
    import requests  # noqa: PLC0415 - only the child process needs it

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    root = base_url + "/incoming/v2"
    out = sys.stdout
    count = 0
    for resource, key in CURSOR_ENDPOINTS.items():
        cursor = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            body = session.get(f"{root}/{resource}", params=params, timeout=60).json()
            for row in body[key]:
                out.write(json.dumps(row) + "\n")
                count += 1
            info = body.get("pageInfo") or {}
            if not info.get("hasMore"):
                break
            cursor = info["cursor"]
    start = END - timedelta(days=DAYS)
    step = timedelta(days=window_days)
    for endpoint in EVENT_ENDPOINTS:
        window_start = start
        while window_start < END:
            window_end = min(window_start + step, END)
            end_ms = _ms(window_end) - 1
            cursor = None
            while True:
                params = {"startDate": _ms(window_start), "endDate": end_ms}
                if cursor:
                    params["cursor"] = cursor
                body = session.get(f"{root}/events/{endpoint}", params=params, timeout=60).json()
                container = body if "events" in body else body["data"]["APIEvents"]
                events = container["events"]
                if not events:
                    break
                for event in events:
                    out.write(json.dumps(event) + "\n")
                    count += 1
                info = container.get("pageInfo")
                if info is not None:
                    if not info.get("hasMore"):
                        break
                    cursor = info["cursor"]
                else:
                    end_ms = _iso_to_ms(events[-1]["timestamp"]) - 1
            window_start = window_end
    out.flush()
    print(f"PLAIN_RECORDS {count}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--window-days", type=float, default=1)
    parser.add_argument("--runs", type=int, default=1, help="best of N for each side")
    parser.add_argument("--plain-loop", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(args.plain_loop, args.window_days)
        return

    with tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as stack:
        url = start_url_server(
            [
                str(FAKE_API),
                "--port",
                "0",
                "--users",
                str(args.users),
                "--events",
                str(args.events),
                "--days",
                str(DAYS),
                "--seed",
                "1",
                "--api-key",
                API_KEY,
            ],
            Path(logs) / "fake_api.log",
            stack,
        )
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            config = tmpdir / "config.json"
            config.write_text(
                json.dumps(
                    {
                        "api_url": url,
                        "api_key": API_KEY,
                        "start_date": (END - timedelta(days=DAYS)).isoformat(),
                        "end_date": END.isoformat(),
                        "window_days": args.window_days,
                        "pseudonymize": {},  # opted out: the plain loop it is compared with does not pseudonymize
                        "requests_per_minute": 1e9,
                    }
                ),
                encoding="utf-8",
            )
            tap_cmd = [str(Path(sys.executable).with_name("tap-thoughtindustries")), "--config", str(config)]
            if not Path(tap_cmd[0]).exists():
                tap_cmd = ["tap-thoughtindustries", "--config", str(config)]
            plain_cmd = [
                sys.executable,
                __file__,
                "--plain-loop",
                url,
                "--window-days",
                str(args.window_days),
            ]
            tap_best = plain_best = None
            for _ in range(args.runs):
                seconds, rss, err = run_measured(tap_cmd, stderr_path=tmpdir / "tap.err")
                records = sum(int(m.group(1)) for m in re.finditer(r'"metric":"record_count","value":(\d+)', err))
                if tap_best is None or seconds < tap_best[0]:
                    tap_best = (seconds, rss, records)
                seconds, rss, err = run_measured(plain_cmd, stderr_path=tmpdir / "plain.err")
                match = re.search(r"PLAIN_RECORDS (\d+)", err)
                records = int(match.group(1)) if match else 0
                if plain_best is None or seconds < plain_best[0]:
                    plain_best = (seconds, rss, records)

    if tap_best is None or plain_best is None:
        raise SystemExit("no runs")
    rows = [("tap-thoughtindustries", *tap_best), ("plain requests loop", *plain_best)]
    print(f"{args.events} events, {DAYS} days, window_days={args.window_days}")
    print(f"| {'reader':<22} | {'records':>8} | {'seconds':>8} | {'records/s':>10} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 10}|{'-' * 12}|{'-' * 14}|")
    for name, seconds, rss, records in rows:
        print(f"| {name:<22} | {records:>8} | {seconds:>8.2f} | {records / seconds:>10.0f} | {rss:>12.1f} |")
    tap_rate = tap_best[2] / tap_best[0]
    plain_rate = plain_best[2] / plain_best[0]
    print(f"tap / plain loop: {tap_rate / plain_rate:.2f} (goal: at least 0.50)")
    if tap_best[2] != plain_best[2]:
        print(f"WARNING: record counts differ ({tap_best[2]} vs {plain_best[2]})")


if __name__ == "__main__":
    main()
