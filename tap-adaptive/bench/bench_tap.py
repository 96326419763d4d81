"""Throughput and memory of tap-adaptive's data stream on one large exportData, against a plain loop.

    python bench/bench_tap.py [--rows 860000] [--runs 1]

Starts tests/fake_api.py whose exportData answer has ``--rows`` CSV rows (about 70 bytes each: 860,000 rows is a
60 MB answer), every row of an allowed account (3 non-empty months each), then runs, each in its own process with
stdout to /dev/null:

* the tap CLI (``tap-adaptive --config ... --catalog ...``: versions + data selected, one version exported), and
* a plain loop (this file with --plain-loop): the same exportData POST with ``requests``, the whole answer read,
  parsed with defusedxml, its CSV read with :mod:`csv`, unpivoted with ``Decimal`` amounts and one ``json.dumps``
  line per record: the limit of "download, parse exactly and print" on this machine.

It reports wall time, records/s and peak RSS (``os.wait4`` rusage of the child). Goal (issue 14): half the plain
loop's records/s, and flat memory (the tap's peak RSS not growing with the answer's size).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from harborline_singer_shared.testing.processes import start_url_server

HERE = Path(__file__).resolve().parent
FAKE_API = HERE.parent / "tests" / "fake_api.py"
sys.path.insert(0, str(HERE.parent / "tests"))
from fake_api import PASSWORD, USERNAME  # noqa: E402

VERSION = "FY25 Budget"
ACCOUNTS = ["4000", "5000", "Revenue Total"]
KEY = "bench-pseudonymization-key-0123456789"


def plain_loop(api_url: str) -> None:
    """POST exportData, read it whole, parse, unpivot, print a JSON line per record."""
    import defusedxml.ElementTree as SafeET  # noqa: PLC0415 - only the child process needs it
    import requests  # noqa: PLC0415
    from defusedxml.ElementTree import tostring  # noqa: PLC0415

    call = SafeET.fromstring(
        f'<call method="exportData" callerName="bench"><credentials login="{USERNAME}" password=""/>'
        f'<version name="{VERSION}" isDefault="false"/></call>'
    )
    call.find("credentials").set("password", PASSWORD)
    content = requests.post(f"{api_url}/v40", data=tostring(call), timeout=600).content
    root = SafeET.fromstring(content, forbid_dtd=True)
    text = root.find("output").text or ""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    periods = [(i, label) for i, label in enumerate(header) if not label.endswith((" Name", " Code"))]
    allowed = set(ACCOUNTS)
    out = sys.stdout
    for row in reader:
        if row[1] not in allowed:
            continue
        for index, label in periods:
            if row[index]:
                record = {"account_code": row[1], "level_name": row[2], "period": label, "amount": Decimal(row[index])}
                out.write(json.dumps(record, default=str) + "\n")


def measure(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one child process with stdout to /dev/null."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:  # noqa: PTH123
        process = subprocess.Popen(command, stdout=devnull, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


def tap_command(api_url: str, workdir: Path) -> list[str]:
    """The tap CLI with a config and a catalog selecting versions and data only."""
    config = {
        "api_url": api_url,
        "username": USERNAME,
        "password": PASSWORD,
        "version_names": [VERSION],
        "account_codes": ACCOUNTS,
        "pseudonymization_key": KEY,
    }
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    tap = [sys.executable, "-m", "harborline_tap_adaptive", "--config", str(config_path)]
    catalog = json.loads(subprocess.run([*tap, "--discover"], capture_output=True, check=True, text=True).stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in {"data", "versions"}
    catalog_path = workdir / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    return [*tap, "--catalog", str(catalog_path)]


def main() -> int:
    """Run the benchmark (or, with --plain-loop URL, be the plain loop's child process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=860_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--plain-loop", metavar="API_URL")
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(args.plain_loop)
        return 0
    records = args.rows * 3
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = start_url_server(
            [str(FAKE_API), "--data-rows", str(args.rows), "--allowed-every", "1"], workdir / "fake.log", stack
        )
        results = {}
        for name, command in (
            ("tap-adaptive", tap_command(url, workdir)),
            ("plain loop", [sys.executable, __file__, "--plain-loop", url]),
        ):
            runs = [measure(command) for _ in range(args.runs)]
            results[name] = min(runs)
    print(f"exportData: {args.rows:,} rows, {records:,} records")
    print("| reader | records | seconds | records/s | peak RSS MiB |")
    print("|:--|--:|--:|--:|--:|")
    for name, (seconds, rss) in results.items():
        print(f"| {name} | {records:,} | {seconds:.2f} | {records / seconds:,.0f} | {rss:.1f} |")
    ratio = results["plain loop"][0] / results["tap-adaptive"][0]
    print(f"tap/plain records/s ratio: {ratio:.2f} (goal: at least 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
