"""A fake ZenGRC REST API v2 for tests and end-to-end runs, shaped like the vendor's responses.

Run it as a script::

    python tests/fake_api.py --port 0 --records 200 --seed 1

The first line on stdout is the base URL to put in the tap's ``api_url`` (it ends in ``/api/v2``);
the server then serves until it is killed. Tests import :class:`FakeZenGRC` and
:func:`generate_dataset` instead.

What it imitates (see the tap's README for the sources):

* ``GET /api/v2/<object>`` for every stream of the tap, answering
  ``{"data": [...], "links": {"next": {"href": "/api/v2/<object>?page=2&page_size=50"}}}``;
  ``next`` is a host-relative path and is absent on the last page;
* ``page_size`` (default 50, at most 250) and ``page`` query parameters, pages in id order;
* HTTP basic auth with the API key id and secret; anything else answers 401;
* records with integer ids, ISO 8601 UTC ``created_at``/``updated_at``, ``custom_attributes`` keyed
  by attribute id, ``mapped`` arrays of ``{id, title, type}`` and person references
  ``{id, name, type}``. The same seed always gives the same data.

Faults can be injected (``inject``) for retry tests: the next N requests to a path answer a given
status, headers and body, or stall longer than the client's timeout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harborline_singer_shared.testing.http import hold_answer

API_PREFIX = "/api/v2"
STREAMS = (
    "assessments",
    "audits",
    "controls",
    "issues",
    "objectives",
    "people",
    "programs",
    "requests",
    "risks",
    "systems",
    "vendors",
)
DEFAULT_USERNAME = "fake-key-id"
DEFAULT_PASSWORD = "fake-key-secret"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 250

_TYPE_NAMES = {
    "assessments": ("Assessment", "ASMT"),
    "audits": ("Audit", "AUDIT"),
    "controls": ("Control", "CONTROL"),
    "issues": ("Issue", "ISSUE"),
    "objectives": ("Objective", "OBJECTIVE"),
    "programs": ("Program", "PROGRAM"),
    "requests": ("Request", "REQUEST"),
    "risks": ("Risk", "RISK"),
    "systems": ("System", "SYSTEM"),
    "vendors": ("Vendor", "VENDOR"),
}
_FIRST = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jade")
_LAST = ("Moreau", "Okafor", "Larsen", "Nakamura", "Silva", "Kowalski", "Haddad", "Olsen")
_STATUSES = ("Draft", "Active", "Deprecated")
_WORKFLOW = ("Not Started", "In Progress", "Completed")
_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 500 * 86400


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(stream: str, ident: int) -> dict[str, Any]:
    type_name, prefix = _TYPE_NAMES[stream]
    return {"id": ident, "title": f"{prefix}-{ident} {type_name.lower()}", "type": type_name}


class _Generator:
    """Builds one deterministic data set; every random choice comes from one seeded RNG."""

    def __init__(self, records: int, seed: int) -> None:
        self.records = records
        self.rng = random.Random(seed)

    def person(self, ident: int | None = None) -> dict[str, Any]:
        ident = ident if ident is not None else self.rng.randint(1, self.records)
        first, last = _FIRST[ident % len(_FIRST)], _LAST[ident % len(_LAST)]
        return {"id": ident, "name": f"{first} {last}", "type": "Person"}

    def people(self, most: int = 3) -> list[dict[str, Any]]:
        return [self.person() for _ in range(self.rng.randint(0, most))]

    def refs(self, stream: str, most: int = 3) -> list[dict[str, Any]]:
        return [_ref(stream, self.rng.randint(1, self.records)) for _ in range(self.rng.randint(0, most))]

    def times(self) -> tuple[str, str]:
        created = _EPOCH + timedelta(seconds=self.rng.randrange(_SPAN_SECONDS))
        # One record in ten shares its update time with another (same second): bookmarks must
        # keep records equal to the boundary.
        updated = created + timedelta(seconds=self.rng.randrange(86400 * 30))
        return _ts(created), _ts(updated)

    def date(self) -> str:
        return (_EPOCH + timedelta(days=self.rng.randrange(600))).date().isoformat()

    def custom_attributes(self, ids: tuple[int, ...]) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for attr_id in ids:
            if self.rng.random() < 0.8:
                value: Any = self.rng.choice(["Yes", "No", "High", "Low", 12, None, "2024-03-01"])
                attrs[str(attr_id)] = {"id": attr_id, "title": f"Attribute {attr_id}", "value": value}
        return attrs

    def base(self, stream: str, ident: int, attr_ids: tuple[int, ...]) -> dict[str, Any]:
        type_name, prefix = _TYPE_NAMES[stream]
        created, updated = self.times()
        return {
            "id": ident,
            "code": f"{prefix}-{ident}",
            "title": f"{type_name} {ident}",
            "type": type_name,
            "description": self.rng.choice([None, f"Description of {type_name.lower()} {ident}."]),
            "status": self.rng.choice(_STATUSES),
            "created_at": created,
            "updated_at": updated,
            "custom_attributes": self.custom_attributes(attr_ids),
        }

    def record(self, stream: str, ident: int) -> dict[str, Any]:  # noqa: PLR0911 - one per type
        if stream == "people":
            created, updated = self.times()
            person = self.person(ident)
            first, last = person["name"].split(" ")
            person.update(
                email=f"{first}.{last}{ident}@example.com".lower(),
                created_at=created,
                updated_at=updated,
            )
            return person
        if stream == "assessments":
            row = self.base(stream, ident, (141, 125, 128))
            row.update(
                assessors=self.people(),
                conclusion=self.rng.choice(["Effective", "Ineffective", None]),
                control=_ref("controls", self.rng.randint(1, self.records)),
                start_date=self.date(),
                end_date=self.date(),
                mapped={"audits": self.refs("audits")},
            )
            return row
        if stream == "audits":
            row = self.base(stream, ident, (66, 212))
            row.update(
                audit_managers=self.people(),
                program=_ref("programs", self.rng.randint(1, self.records)),
                start_date=self.date(),
                end_date=self.date(),
                report_period_start_date=self.date(),
                report_period_end_date=self.date(),
                sync_external_attachments=self.rng.random() < 0.5,
                sync_external_comments=self.rng.random() < 0.5,
                mapped={"markets": [], "standards": self.refs("programs")},
            )
            row["status"] = self.rng.choice(_WORKFLOW)
            return row
        if stream in {"controls", "objectives", "systems"}:
            row = self.base(stream, ident, (187, 106))
            if stream == "controls":
                row["mapped"] = {"objectives": self.refs("objectives")}
            elif stream == "objectives":
                row["os_state"] = self.rng.choice(["Unreviewed", "Reviewed"])
                row["mapped"] = {"controls": self.refs("controls")}
            else:
                row.update(notes=None, tags=["prod"], mapped={"controls": self.refs("controls")})
            return row
        if stream == "issues":
            row = self.base(stream, ident, (109,))
            row.update(
                notes=self.rng.choice([None, "Follow up next quarter."]),
                stop_date=self.rng.choice([None, self.date()]),
                tags=self.rng.sample(["sox", "soc2", "pci", "gdpr"], self.rng.randint(0, 2)),
                mapped={
                    "audits": self.refs("audits"),
                    "controls": self.refs("controls"),
                    "programs": self.refs("programs"),
                    "standards": [],
                },
            )
            return row
        if stream == "programs":
            row = self.base(stream, ident, (201,))
            row.update(
                editors=self.people(),
                managers=self.people(),
                readers=self.people(),
                primary_contact=self.person(),
                secondary_contact=self.rng.choice([None, self.person()]),
                notes=None,
                reference_url=f"https://example.com/programs/{ident}",
                url=None,
                tags=[],
                effective_date=self.date(),
                stop_date=None,
                mapped={"risks": self.refs("risks"), "systems": self.refs("systems")},
            )
            return row
        if stream == "requests":
            row = self.base(stream, ident, (209, 68, 70))
            row["status"] = self.rng.choice(_WORKFLOW)
            row.update(
                assignees=self.people(),
                requesters=self.people(),
                verifiers=self.people(1),
                reviewers=[{"reviewer": self.person(), "status": "Pending"}],
                audit=_ref("audits", self.rng.randint(1, self.records)),
                notes=None,
                test=self.rng.choice([None, "Inspect the evidence."]),
                notify_assignee=self.rng.random() < 0.5,
                start_date=self.date(),
                end_date=self.date(),
                due_date=self.date(),
                stop_date=None,
                tags=[],
                links={"self": {"href": f"{API_PREFIX}/requests/{ident}"}},
                mapped={"controls": self.refs("controls"), "issues": self.refs("issues")},
            )
            return row
        if stream == "risks":
            row = self.base(stream, ident, (156, 44, 79))
            row["risk_vector_score_values"] = [
                {"risk_vector_id": 1, "score": self.rng.randint(1, 5)},
                {"risk_vector_id": 2, "score": self.rng.randint(1, 5)},
            ]
            row["mapped"] = {"controls": self.refs("controls")}
            return row
        if stream == "vendors":
            row = self.base(stream, ident, (103, 264))
            row.update(
                notes=None,
                reference_url=None,
                url=f"https://vendor{ident}.example.com",
                risk_rating=self.rng.choice(["Low", "Medium", "High"]),
                secondary_contact=self.person(),
                tags=["tprm"],
                start_date=self.date(),
                end_date=None,
                mapped={"systems": self.refs("systems"), "products": []},
            )
            return row
        raise ValueError(f"unknown stream {stream}")


def generate_dataset(records: int = 200, seed: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Return ``records`` objects per stream, in id order; the same seed gives the same data."""
    generator = _Generator(records, seed)
    data = {stream: [generator.record(stream, i) for i in range(1, records + 1)] for stream in STREAMS}
    # Make a few records share an update time with their neighbour, so "records equal to the
    # bookmark" exists in every data set.
    for rows in data.values():
        for index in range(1, len(rows), 10):
            rows[index]["updated_at"] = rows[index - 1]["updated_at"]
    return data


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests to ``path`` (or any path if None)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1
    path: str | None = None
    delay: float = 0.0  # hold the answer this long, or until the client gives up (closes the connection)


@dataclass
class RecordedRequest:
    """What a test may want to assert about a request the fake received."""

    path: str
    query: dict[str, str]
    authorized: bool
    status: int


class FakeZenGRC:
    """A threaded HTTP server imitating the ZenGRC API v2 list endpoints."""

    def __init__(
        self,
        *,
        records: int = 200,
        seed: int = 1,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        host: str = "127.0.0.1",
        port: int = 0,
        data: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.data = data if data is not None else generate_dataset(records, seed)
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._serving = threading.local()  # per handler thread: the connection of the request being answered
        self.faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeZenGRC:
        """Bind and serve in a daemon thread; returns self."""
        owner = self

        class Handler(_Handler):
            fake = owner

        self._server = ThreadingHTTPServer(self._address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeZenGRC:  # noqa: PYI034 - no typing_extensions dependency for Self on 3.10
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL, ending in ``/api/v2``."""
        if self._server is None:
            raise RuntimeError("the fake API is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    # -- behaviour ---------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue a scripted answer (faults are consumed in order)."""
        with self._lock:
            self.faults.append(fault)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path is None or fault.path == path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> tuple[int, dict[str, str], Any]:
        """Return ``(status, headers, body)`` for one GET request."""
        fault = self._take_fault(path)
        if fault is not None:
            if fault.delay:
                connection = getattr(self._serving, "connection", None)  # set by the handler of this request
                if connection is None:
                    time.sleep(fault.delay)
                else:
                    hold_answer(connection, fault.delay)
            return fault.status, fault.headers, fault.body
        if authorization != self._auth:
            return 401, {"WWW-Authenticate": 'Basic realm="api"'}, {"message": "Unauthorized"}
        stream = path[len(API_PREFIX) + 1 :] if path.startswith(API_PREFIX + "/") else ""
        if stream not in self.data:
            return 404, {}, {"message": f"Not found: {path}"}
        try:
            page = max(1, int(query.get("page", "1")))
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", DEFAULT_PAGE_SIZE))))
        except ValueError:
            return 400, {}, {"message": "page and page_size must be integers"}
        rows = self.data[stream]
        start = (page - 1) * size
        body: dict[str, Any] = {"data": rows[start : start + size], "links": {}}
        if start + size < len(rows):
            body["links"]["next"] = {"href": f"{API_PREFIX}/{stream}?page={page + 1}&page_size={size}"}
        return 200, {}, body

    def record(self, request: RecordedRequest) -> None:
        """Remember a request (thread-safe)."""
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeZenGRC
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: stdout carries only the base URL, stderr stays clean."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        authorization = self.headers.get("Authorization")
        self.fake._serving.connection = self.connection  # a fault's delay ends when this client leaves
        status, headers, body = self.fake.answer(parts.path, query, authorization)
        self.fake.record(RecordedRequest(parts.path, query, authorization is not None, status))
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. a timeout test)


def main(argv: list[str] | None = None) -> int:
    """Serve until killed; print the base URL first so a script can read it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--records", type=int, default=200, help="records per stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    args = parser.parse_args(argv)
    fake = FakeZenGRC(
        records=args.records,
        seed=args.seed,
        username=args.username,
        password=args.password,
        host=args.host,
        port=args.port,
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
