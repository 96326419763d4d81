"""A fake Clari API (v4 forecast exports) for tests, demos and the benchmark, shaped like the vendor's answers.

Run it as a script::

    python tests/fake_api.py --port 0 --entries 200000 --forecasts net_bookings --current-period 2025_Q1

The first line on stdout is the base URL to put in the tap's ``api_url`` (it ends in ``/v4``); the server then serves
until it is terminated. Tests import :class:`FakeClari` instead.

What it imitates (see the tap's README for the sources):

* the ``apikey`` header; anything else answers 401;
* ``POST /v4/export/forecast/{forecastId}`` with ``{"timePeriod", "includeHistorical", "typesToExport",
  "exportFormat"}`` answers ``{"jobId": ...}``; an unknown forecast answers 400 ``no_such_forecast_config``;
* ``GET /v4/export/jobs/{jobId}``: the job goes SCHEDULED -> STARTED -> DONE over ``polls_until_done`` polls (by
  poll count, never by time), answered as ``{"job": {"status"}}`` (production) or ``{"status"}`` (the published
  spec) per ``status_envelope``; ``job_scripts`` makes a job end FAILED/CANCELLED or never finish;
* ``PATCH /v4/export/jobs/{jobId}`` with ``{"type": "CANCEL"}`` cancels it;
* ``GET /v4/export/jobs/{jobId}/results``: ``{"entries", "users", "fields", "timePeriods", "timeFrames"}``, weeks in
  shuffled order, week ids reused in every quarter, the first week starting before the quarter (on the Monday on or
  before its first day), values with more digits than a float holds; an unknown period silently answers the current
  quarter, as Clari does.

Faults can be queued (``inject``): the next N requests matching a method and path prefix answer a given status,
headers and body (429 with Retry-After, 503 ...).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import signal
import sys
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from harborline_singer_shared.testing.http import FixtureRequest, FixtureResponse, FixtureServer
from harborline_tap_clari.periods import FiscalCalendar, parse_period

API_PREFIX = "/v4"
DEFAULT_API_KEY = "fake-clari-api-key-0123456789"
DEFAULT_FORECASTS = ("net_bookings", "renewals")
DEFAULT_CURRENT_PERIOD = "2025_Q1"
#: A value a float cannot hold (17 significant digits plus cents): it must arrive exactly.
BIG_VALUE = Decimal("12345678901234567.89")
FIELDS = (
    {"fieldId": "forecast_call", "fieldName": "Forecast Call", "fieldType": "forecast"},
    {"fieldId": "best_case", "fieldName": "Best Case", "fieldType": "forecast"},
    {"fieldId": "commit", "fieldName": "Commit", "fieldType": "forecast"},
    {"fieldId": "quota", "fieldName": "Quota", "fieldType": "quota"},
)
_FIRST = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jade")
_LAST = ("Moreau", "Okafor", "Larsen", "Nakamura", "Silva", "Kowalski", "Haddad", "Olsen")
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def weeks_of(calendar: FiscalCalendar, period: str) -> list[tuple[date, date]]:
    """The weeks Clari shows for a quarter: Mondays from the one on or before its first day, to its last day."""
    quarter = parse_period(period)
    first, last = calendar.first_day(quarter), calendar.last_day(quarter)
    start = first - timedelta(days=first.weekday())
    weeks = []
    while start <= last:
        weeks.append((start, start + timedelta(days=6)))
        start += timedelta(days=7)
    return weeks


def build_document(
    forecast_id: str,
    period: str,
    *,
    calendar: FiscalCalendar,
    users: int,
    entries: int | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """A deterministic results document for one forecast and quarter.

    ``entries`` caps the number of entries (for the benchmark); by default every user, week and field has one.
    """
    rng = random.Random(zlib.crc32(f"{seed}:{forecast_id}:{period}".encode()))
    quarter = parse_period(period)
    weeks = weeks_of(calendar, period)
    people = []
    for n in range(1, users + 1):
        first, last = _FIRST[n % len(_FIRST)], _LAST[n % len(_LAST)]
        team = n % 5
        people.append(
            {
                "userId": f"u{n:05d}",
                "crmId": f"0055e00000{n:08d}",
                "email": f"{first}.{last}{n}@example.com".lower(),
                "name": f"{first} {last}",
                "hierarchyId": f"h{team}",
                "hierarchyName": f"Team {team}",
                "parentHierarchyId": "h0",
                "parentHierarchyName": "Sales",
                "scopeId": f"h{team}::MGR",
            }
        )
    frames = [
        {"timeFrameId": f"w{index + 1:02d}", "startDate": start.isoformat(), "endDate": end.isoformat()}
        for index, (start, end) in enumerate(weeks)
    ]
    rows: list[dict[str, Any]] = []
    combos = itertools.product(people, frames, FIELDS)
    for person, frame, field_ in itertools.islice(combos, entries):
        updated = datetime.fromisoformat(frame["startDate"]).replace(tzinfo=UTC) + timedelta(
            seconds=rng.randrange(6 * 86400)
        )
        row: dict[str, Any] = {
            "userId": person["userId"],
            "fieldId": field_["fieldId"],
            "timeFrameId": frame["timeFrameId"],
            "timePeriodId": period,
            "forecastValue": Decimal(f"{rng.randrange(10**8)}.{rng.randrange(100):02d}"),
            "quotaValue": Decimal(f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"),
            "adjustmentValue": None if rng.random() < 0.5 else Decimal(rng.randrange(-5000, 5000)),
            "currency": "USD",
            "isUpdated": rng.random() < 0.3,
            "updatedBy": people[0]["userId"],
            "updatedOn": _ms(updated),
        }
        if field_["fieldId"] == "best_case":
            row["crmTotalValue"] = Decimal(f"{rng.randrange(10**7)}.{rng.randrange(100):02d}")
        rows.append(row)
    if rows:
        rows[0]["forecastValue"] = BIG_VALUE
    rng.shuffle(rows)
    shuffled_frames = list(frames)
    rng.shuffle(shuffled_frames)
    first_day, last_day = calendar.first_day(quarter), calendar.last_day(quarter)
    return {
        "entries": rows,
        "users": people,
        "fields": [dict(f) for f in FIELDS],
        "timePeriods": [
            {
                "timePeriodId": period,
                "label": f"Q{quarter.number} FY{quarter.year}",
                "type": "quarter",
                "year": str(quarter.year),
                "startDate": first_day.isoformat(),
                "endDate": last_day.isoformat(),
                "crmId": f"0260000{quarter.year}{quarter.number}",
            }
        ],
        "timeFrames": shuffled_frames,
    }


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests with this method whose path starts with ``path``."""

    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1


@dataclass
class Job:
    """One export job and how far it got."""

    job_id: str
    forecast_id: str
    period: str
    returned_period: str
    script: list[str]
    polls: int = 0
    status: str = "SCHEDULED"
    body: dict[str, Any] = field(default_factory=dict)


class FakeClari:
    """Clari's export endpoints on a local :class:`FixtureServer`; every document is generated deterministically."""

    def __init__(
        self,
        *,
        forecasts: tuple[str, ...] = DEFAULT_FORECASTS,
        users: int = 6,
        entries: int | None = None,
        seed: int = 1,
        api_key: str = DEFAULT_API_KEY,
        current_period: str = DEFAULT_CURRENT_PERIOD,
        calendar: FiscalCalendar | None = None,
        polls_until_done: int = 3,
        status_envelope: str = "job",
    ) -> None:
        self.forecasts = set(forecasts)
        self.users = users
        self.entries = entries
        self.seed = seed
        self.api_key = api_key
        self.current_period = current_period
        self.calendar = calendar or FiscalCalendar()
        self.polls_until_done = polls_until_done
        self.status_envelope = status_envelope
        #: Periods Clari does not know: an export of one answers the current quarter.
        self.unknown_periods: set[str] = set()
        #: (forecast, period) -> the statuses its jobs go through; "STARTED" forever when the list ends that way
        #: and ``never_finish`` holds the key.
        self.job_scripts: dict[tuple[str, str], list[str]] = {}
        self.never_finish: set[tuple[str, str]] = set()
        #: (forecast, period) -> bytes served instead of the document (e.g. an HTML error page).
        self.raw_results: dict[tuple[str, str], bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.cancelled: list[str] = []
        self.faults: list[Fault] = []
        self._documents: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = FixtureServer()
        self.server.add_route("POST", API_PREFIX + "/export/forecast/{forecast_id}", self._export)
        self.server.add_route("GET", API_PREFIX + "/export/jobs/{job_id}", self._poll)
        self.server.add_route("PATCH", API_PREFIX + "/export/jobs/{job_id}", self._cancel)
        self.server.add_route("GET", API_PREFIX + "/export/jobs/{job_id}/results", self._results)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FakeClari:
        """Serve in a daemon thread; returns self."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        self.server.stop()

    def __enter__(self) -> FakeClari:  # noqa: PYI034 - plain return type for the script
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL (``api_url``), ending in ``/v4``."""
        return self.server.url + API_PREFIX

    @property
    def requests(self) -> list[FixtureRequest]:
        """Every request received, in order."""
        return self.server.requests

    def calls(self, method: str, prefix: str = "") -> list[FixtureRequest]:
        """Requests with this method whose path (after /v4) starts with ``prefix``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(API_PREFIX + prefix)]

    # -- data ----------------------------------------------------------------------------------------------------

    def document(self, forecast_id: str, period: str) -> dict[str, Any]:
        """The document an export of this forecast and period returns now (tests may change it in place)."""
        key = (forecast_id, period)
        with self._lock:
            if key not in self._documents:
                self._documents[key] = build_document(
                    forecast_id,
                    period,
                    calendar=self.calendar,
                    users=self.users,
                    entries=self.entries,
                    seed=self.seed,
                )
            return self._documents[key]

    def inject(self, fault: Fault) -> None:
        """Queue a scripted answer (faults are consumed in order)."""
        with self._lock:
            self.faults.append(fault)

    # -- handlers ------------------------------------------------------------------------------------------------

    def _gate(self, request: FixtureRequest) -> FixtureResponse | None:
        """A queued fault or a 401, else None."""
        with self._lock:
            for fault in self.faults:
                if fault.method == request.method and request.path.startswith(API_PREFIX + fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return FixtureResponse(fault.status, fault.headers, fault.body)
        if request.headers.get("apikey") != self.api_key:
            return FixtureResponse(401, {}, {"error": "unauthorized", "message": "Invalid API token"})
        return None

    def _export(self, request: FixtureRequest) -> FixtureResponse:
        gated = self._gate(request)
        if gated is not None:
            return gated
        forecast_id = request.path_params["forecast_id"]
        if forecast_id not in self.forecasts:
            return FixtureResponse(400, {}, {"error": "no_such_forecast_config", "message": f"{forecast_id} not found"})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return FixtureResponse(400, {}, {"error": "bad_request"})
        period = body.get("timePeriod") or self.current_period
        returned = period
        try:
            parse_period(period)
        except ValueError:
            returned = self.current_period
        if period in self.unknown_periods:
            returned = self.current_period
        key = (forecast_id, period)
        if key in self.job_scripts:
            script = list(self.job_scripts[key])
        else:
            script = ["SCHEDULED"] + ["STARTED"] * max(self.polls_until_done - 2, 0) + ["DONE"]
            script = script[-self.polls_until_done :] if self.polls_until_done >= 1 else ["DONE"]
        with self._lock:
            job_id = f"job{next(self._ids):06d}"
            self.jobs[job_id] = Job(job_id, forecast_id, period, returned, script, body=body)
        return FixtureResponse(200, {}, {"jobId": job_id})

    def _job(self, request: FixtureRequest) -> Job | None:
        return self.jobs.get(request.path_params["job_id"])

    def _poll(self, request: FixtureRequest) -> FixtureResponse:
        gated = self._gate(request)
        if gated is not None:
            return gated
        job = self._job(request)
        if job is None:
            return FixtureResponse(404, {}, {"error": "no_such_job"})
        with self._lock:
            if job.status not in {"CANCELLED", "FAILED", "ABORTED", "DONE"}:
                job.polls += 1
                key = (job.forecast_id, job.period)
                if key in self.never_finish:
                    job.status = "STARTED"
                else:
                    job.status = job.script[min(job.polls, len(job.script)) - 1]
            state = {"jobId": job.job_id, "status": job.status, "type": "forecast"}
        if self.status_envelope == "job":
            return FixtureResponse(200, {}, {"job": state})
        return FixtureResponse(200, {}, state)

    def _cancel(self, request: FixtureRequest) -> FixtureResponse:
        gated = self._gate(request)
        if gated is not None:
            return gated
        job = self._job(request)
        if job is None:
            return FixtureResponse(404, {}, {"error": "no_such_job"})
        if request.json().get("type") != "CANCEL":
            return FixtureResponse(400, {}, {"error": "bad_request"})
        with self._lock:
            job.status = "CANCELLED"
            self.cancelled.append(job.job_id)
        return FixtureResponse(200, {}, {"job": {"jobId": job.job_id, "status": job.status}})

    def _results(self, request: FixtureRequest) -> FixtureResponse:
        gated = self._gate(request)
        if gated is not None:
            return gated
        job = self._job(request)
        if job is None:
            return FixtureResponse(404, {}, {"error": "no_such_job"})
        if job.status != "DONE":
            return FixtureResponse(409, {}, {"error": "job_not_done"})
        raw = self.raw_results.get((job.forecast_id, job.period))
        if raw is not None:
            return FixtureResponse(200, {"Content-Type": "text/html"}, raw)
        document = self.document(job.forecast_id, job.returned_period)
        with self._lock:
            data = _ENCODER.encode(document)
        return FixtureResponse(200, {"Content-Type": "application/json"}, data)


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated; print the base URL first so a script can read it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="ignored: a free port is always used")
    parser.add_argument("--forecasts", default=",".join(DEFAULT_FORECASTS), help="comma-separated Forecast Tab ids")
    parser.add_argument("--users", type=int, default=6, help="users per export")
    parser.add_argument("--entries", type=int, default=None, help="entries per export (users grow to fill them)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--current-period", default=DEFAULT_CURRENT_PERIOD)
    parser.add_argument("--start-month", type=int, default=1)
    parser.add_argument("--named-by", default="end")
    parser.add_argument("--polls", type=int, default=3, help="polls until a job is DONE")
    args = parser.parse_args(argv)
    calendar = FiscalCalendar(args.start_month, args.named_by)
    users = args.users
    if args.entries:
        weeks = len(weeks_of(calendar, args.current_period))
        users = max(users, -(-args.entries // (weeks * len(FIELDS))))
    fake = FakeClari(
        forecasts=tuple(f for f in args.forecasts.split(",") if f),
        users=users,
        entries=args.entries,
        seed=args.seed,
        api_key=args.api_key,
        current_period=args.current_period,
        calendar=calendar,
        polls_until_done=args.polls,
    ).start()
    print(fake.url, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
