"""A fake Adaptive Planning XML API for tests, the end-to-end test and the benchmark, shaped like the vendor's answers.

Run it as a script::

    python tests/fake_api.py --data-rows 400000

The first stdout line is the ``api_url`` to configure (the tap posts to ``{api_url}/v40``); it serves until
terminated. Tests import :class:`FakeAdaptive`.

What it imitates (the README lists which shapes are documented and which were decided):

* one endpoint, ``POST /api/v{N}``; the body is ``<call method=".." callerName=".."><credentials login password
  [instanceCode]/>...</call>``, parsed with ElementTree (a request built by string formatting with ``&`` or ``<`` in
  a name fails here as it would there);
* ``<response success="true"><output>...</output></response>``; refused credentials answer ``success="false"`` with
  ``error-authentication-failure``, an unknown instance code ``error-invalid-instance-code``;
* exportVersions: a tree with nested version folders, an empty folder and a decoy folder of a similar name;
* exportData: CSV in CDATA (Account Name, Account Code, Level Name, one ``<Dimension> Name`` per requested dimension,
  then one column per month), sent in chunks (chunked transfer); like a leaky server it returns every account,
  MNPI ones included, whatever the filter asked for;
* exportConfigurableModelData: CSV in ``output/data`` in pages of a job (``<job jobNumber pageNumber isLastPage>``).

Faults (:class:`Fault`) are queued per method: an HTTP status (429 with Retry-After, 503), a raw body (an XML bomb, an
internal entity), ``success="false"`` messages, a connection dropped mid-answer, or an answer that stops halfway and
waits (for the kill-and-resume test).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml.ElementTree import fromstring

if TYPE_CHECKING:
    from collections.abc import Iterator

USERNAME = "api.user@example.com"
PASSWORD = 'p&ss<w>rd "quoted"'
INSTANCES = ("ACME1", "ACME2")
MONTHS = ("01/2025", "02/2025", "03/2025")
ALLOWED = ("4000", "5000", "Revenue Total")
MNPI = ("9100", "9200")
BIG = "12345678901234567.89"
XML_BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;'
    b'&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
    b'<response success="true"><output>&lol3;</output></response>'
)
INTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE response [<!ENTITY company "Acme">]>\n'
    b'<response success="true"><output><accounts><account id="1" code="A" name="&company;"/></accounts></output>'
    b"</response>"
)


@dataclass
class Fault:
    """A scripted answer for the next ``times`` calls of ``method``.

    ``status``: answer this HTTP status (``headers`` e.g. Retry-After). ``body``: answer these bytes. ``messages``:
    answer ``success="false"`` with these (key, text). ``drop_after``: send this many bytes of the real answer, then
    close the connection. ``hold``: send half the real answer, then wait until the event is set.
    """

    method: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)
    drop_after: int | None = None
    hold: threading.Event | None = None
    times: int = 1
    #: Matching calls to let through before this fault applies.
    skip: int = 0
    #: Set when a held answer has sent its first half.
    held: threading.Event = field(default_factory=threading.Event)


@dataclass
class Call:
    """One call the fake received."""

    method: str
    root: Element
    api_version: str

    def find(self, path: str) -> Element | None:
        return self.root.find(path)


def _response(output: Element | None = None) -> bytes:
    root = Element("response", {"success": "true"})
    if output is not None:
        root.append(output)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode()


def failure(messages: list[tuple[str, str]]) -> bytes:
    """A ``success="false"`` answer."""
    root = Element("response", {"success": "false"})
    holder = SubElement(root, "messages")
    for key, text in messages:
        message = SubElement(holder, "message", {"key": key, "type": "ERROR"})
        message.text = text
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode()


def _el(tag: str, attributes: dict[str, Any] | None = None, *children: Element) -> Element:
    node = Element(tag, {k: str(v) for k, v in (attributes or {}).items()})
    node.extend(children)
    return node


@dataclass
class Version:
    id: int
    name: str
    type: str = "PLANNING"
    children: list[Version] = field(default_factory=list)
    default: bool = False


def default_versions() -> list[Version]:
    """Nested folders, an empty one, a decoy of a similar name, names XML must escape."""
    return [
        Version(1, "Actuals", "ACTUALS"),
        Version(2, "Working Budget", default=True),
        Version(
            10,
            "Shared with Data",
            "VERSION_FOLDER",
            [
                Version(11, "FY25 Budget"),
                Version(12, "Forecasts", "VERSION_FOLDER", [Version(13, 'Forecast & <Q1> "final"')]),
                Version(14, "Empty Folder", "VERSION_FOLDER"),
            ],
        ),
        Version(20, "Shared with Data (old)", "VERSION_FOLDER", [Version(21, "Old Budget")]),
        Version(30, "Archive", "VERSION_FOLDER", [Version(31, "FY23 Budget")]),
    ]


ACCOUNTS = [
    # code, name, children
    ("Revenue Total", 'Revenue, "Net" Ümsatz', [("4000", "Product Revenue, Zürich", []), ("5000", "Services", [])]),
    ("9000", "Bookings (MNPI)", [("9100", "Board Forecast", []), ("9200", "M&A Pipeline", [])]),
]
LEVELS = [("Total Company", [('Nörth, "America"', []), ("Europe & Asia", [])])]
USERS = [
    (1, "ana.lopez@example.com", "Ana López", "Finance"),
    (2, "bjorn.o@example.com", "Björn Ødegård", "FP&A"),
    (3, "chen.w@example.com", "Chen Wei", "Sales Ops"),
]


class FakeAdaptive:
    """The XML API on a local threaded HTTP server."""

    def __init__(
        self,
        *,
        data_rows: int | None = None,
        cmd_pages: int = 2,
        cmd_rows_per_page: int = 3,
        password: str = PASSWORD,
        allowed_every: int = 50,
    ) -> None:
        self.password = password
        #: With ``data_rows``: every n-th generated row is of an allowed account, the others are MNPI.
        self.allowed_every = allowed_every
        self.versions = default_versions()
        #: Rows per exportData answer when set (the benchmark and the memory test); else one row per account x level.
        self.data_rows = data_rows
        self.cmd_pages = cmd_pages
        self.cmd_rows_per_page = cmd_rows_per_page
        #: version name -> {(account code, level): {month: cell text}} overriding generated cells.
        self.cells: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
        self.calls: list[Call] = []
        #: Bytes of every streamed (chunked) answer sent so far.
        self.bytes_sent = 0
        #: Exceptions of the fake itself (a test asserts there are none).
        self.errors: list[BaseException] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FakeAdaptive:
        """Serve on a free port in a daemon thread."""
        owner = self

        class Handler(_Handler):
            fake = owner

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda *_: None  # type: ignore[method-assign]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; release held answers."""
        for fault in self.faults:
            if fault.hold is not None:
                fault.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAdaptive:  # noqa: PYI034 - plain type for the script
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ``api_url`` (the tap appends ``/v40``)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def inject(self, fault: Fault) -> Fault:
        """Queue a fault for its method."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def methods(self) -> list[str]:
        """The methods called, in order."""
        return [c.method for c in self.calls]

    def data_calls(self) -> list[str]:
        """The version names exportData was called for, in order."""
        return [c.find("version").get("name", "") for c in self.calls if c.method == "exportData"]  # type: ignore[union-attr]

    # -- answers -------------------------------------------------------------------------------------------------

    def answer(self, call: Call) -> tuple[int, dict[str, str], bytes | Iterator[bytes], Fault | None]:
        """(status, headers, body, fault) for one call."""
        with self._lock:
            self.calls.append(call)
            fault = next((f for f in self.faults if f.method == call.method and f.times > 0), None)
            if fault is not None and fault.skip > 0:
                fault.skip -= 1
                fault = None
            elif fault is not None:
                fault.times -= 1
        headers = {"Content-Type": "text/xml"}
        if fault is not None and fault.status is not None:
            return fault.status, fault.headers, b"<html>busy</html>", None
        if fault is not None and fault.body is not None:
            return 200, headers, fault.body, None
        if fault is not None and fault.messages:
            return 200, headers, failure(fault.messages), None
        credentials = call.find("credentials")
        if credentials is None or credentials.get("login") != USERNAME or credentials.get("password") != self.password:
            return 200, headers, failure([("error-authentication-failure", "Authentication failed")]), None
        instance = credentials.get("instanceCode")
        if instance is not None and instance not in INSTANCES:
            return 200, headers, failure([("error-invalid-instance-code", "Invalid instance code")]), None
        builder = getattr(self, "_" + call.method, None)
        if builder is None:
            return 200, headers, failure([("error-invalid-method", f"Unknown method {call.method}")]), fault
        body = builder(call)
        return 200, {"Content-Type": "text/xml"}, body, fault

    def _exportVersions(self, call: Call) -> bytes:  # noqa: N802 - named after the method
        def node(version: Version) -> Element:
            attributes = {
                "id": version.id,
                "name": version.name,
                "shortName": "",
                "type": version.type,
                "isVirtual": "0",
                "description": "",
                "isDefaultVersion": "1" if version.default else "0",
                "isLocked": "0",
                "startVersion": "01/2020",
                "endVersion": "12/2027",
            }
            return _el("version", attributes, *(node(child) for child in version.children))

        return _response(_el("output", None, _el("versions", None, *(node(v) for v in self.versions))))

    def _exportAccounts(self, call: Call) -> bytes:  # noqa: N802
        ids = iter(range(100, 1000))

        def node(code: str, name: str, children: list[Any]) -> Element:
            account = _el(
                "account",
                {
                    "id": next(ids),
                    "code": code,
                    "name": name,
                    "accountTypeCode": "I",
                    "shortName": "",
                    "isAssumption": "0",
                    "suppressZeroes": "1",
                    "decimalPrecision": "2",
                    "timeWeightAcctId": "",
                    "planBy": "DELTA",
                    "futureAttribute": "kept in extra",
                },
                _el("attributes", None, _el("attribute", {"attributeId": "7", "name": "Segment", "value": "Core"})),
            )
            account.extend(node(*child) for child in children)
            return account

        return _response(_el("output", None, _el("accounts", None, *(node(*a) for a in ACCOUNTS))))

    def _exportLevels(self, call: Call) -> bytes:  # noqa: N802
        ids = iter(range(200, 1000))

        def node(name: str, children: list[Any]) -> Element:
            level = _el("level", {"id": next(ids), "name": name, "currency": "USD", "isElimination": "false"})
            level.extend(node(*child) for child in children)
            return level

        return _response(_el("output", None, _el("levels", None, *(node(*lv) for lv in LEVELS))))

    def _exportDimensions(self, call: Call) -> bytes:  # noqa: N802
        region = _el(
            "dimension",
            {"id": 1, "name": "Region", "shortName": "", "keepSorted": "1", "seqNo": "1"},
            _el(
                "dimensionValue",
                {"id": 11, "name": "Americas", "description": ""},
                _el("dimensionValue", {"id": 12, "name": "Brasil, São Paulo"}),
            ),
            _el("dimensionValue", {"id": 13, "name": "EMEA"}),
        )
        product = _el("dimension", {"id": 2, "name": "Product"}, _el("dimensionValue", {"id": 11, "name": "Widgets"}))
        return _response(_el("output", None, _el("dimensions", None, region, product)))

    def _exportAttributes(self, call: Call) -> bytes:  # noqa: N802
        segment = _el(
            "attribute",
            {"id": 7, "name": "Segment", "type": "account", "autoCreate": "0", "keepSorted": "1"},
            _el("attributeValue", {"id": 70, "name": "Core"}, _el("attributeValue", {"id": 71, "name": "Core & More"})),
        )
        return _response(_el("output", None, _el("attributes", None, segment)))

    def _exportUsers(self, call: Call) -> bytes:  # noqa: N802
        users = [
            _el(
                "user",
                {
                    "id": uid,
                    "guid": f"guid-{uid}",
                    "login": email,
                    "email": email,
                    "name": name,
                    "position": position,
                    "permissionSetId": "3",
                    "timeZone": "Europe/Berlin",
                },
                _el("subscriptions", {"noNewsletter": "1", "noMaintenance": "0"}),
                _el("groups", None, _el("group", {"id": "5"})),
            )
            for uid, email, name, position in USERS
        ]
        return _response(_el("output", None, _el("users", None, *users)))

    def _flat(self, container: str, tag: str, rows: list[dict[str, Any]]) -> bytes:
        return _response(_el("output", None, _el(container, None, *(_el(tag, row) for row in rows))))

    def _exportActiveCurrencies(self, call: Call) -> bytes:  # noqa: N802
        return self._flat(
            "activeCurrencies",
            "currency",
            [
                {"code": "USD", "name": "US Dollar", "precision": "2", "isReportingCurrency": "1"},
                {"code": "EUR", "name": "Euro", "precision": "2", "isReportingCurrency": "0"},
            ],
        )

    def _exportCustomerLogo(self, call: Call) -> bytes:  # noqa: N802
        return self._flat("customerLogos", "customerLogo", [{"url": "https://example.com/logo.png"}])

    def _exportDimensionFamilies(self, call: Call) -> bytes:  # noqa: N802
        family = _el(
            "dimensionFamily",
            {"id": 1, "name": "Go-to-market"},
            _el("dimensions", None, _el("dimension", {"id": "1"})),
            _el("levels", None, _el("level", {"id": "201"})),
        )
        return _response(_el("output", None, _el("dimensionFamilies", None, family)))

    def _exportDimensionMapping(self, call: Call) -> bytes:  # noqa: N802
        return self._flat(
            "dimensionMappings", "mapping", [{"id": 1, "dimensionId": 1, "sourceValue": "BR", "targetValueId": 12}]
        )

    def _exportGroups(self, call: Call) -> bytes:  # noqa: N802
        group = _el(
            "group", {"id": 5, "name": "Finance", "isGlobal": "1"}, _el("users", None, _el("user", {"id": "1"}))
        )
        return _response(_el("output", None, _el("groups", None, group)))

    def _exportInstances(self, call: Call) -> bytes:  # noqa: N802
        return self._flat(
            "instances",
            "instance",
            [{"code": "ACME1", "name": "Acme", "isDefault": "true"}, {"code": "ACME2", "name": "Acme Sandbox"}],
        )

    def _exportLocales(self, call: Call) -> bytes:  # noqa: N802
        return self._flat(
            "locales", "locale", [{"code": "en_US", "name": "English"}, {"code": "de_DE", "name": "Deutsch"}]
        )

    def _exportPermissionSets(self, call: Call) -> bytes:  # noqa: N802
        admin = _el(
            "permissionSet", {"id": 3, "name": "Admin"}, _el("permissions", None, _el("permission", {"id": "p1"}))
        )
        return _response(_el("output", None, _el("permissionSets", None, admin)))

    def _exportRoles(self, call: Call) -> bytes:  # noqa: N802
        return self._flat("roles", "role", [{"id": 1, "name": "Planner", "description": "Plans"}])

    def _exportSecurityAudit(self, call: Call) -> bytes:  # noqa: N802
        return self._flat(
            "securityAudit",
            "event",
            [
                {
                    "id": 900,
                    "timestamp": "2025-03-01 08:15:00",
                    "userId": 1,
                    "login": USERS[0][1],
                    "eventType": "LOGIN",
                    "ipAddress": "203.0.113.7",
                }
            ],
        )

    def _exportSheets(self, call: Call) -> bytes:  # noqa: N802
        return self._flat("sheets", "sheet", [{"id": 5, "name": "Personnel", "type": "modeled", "isGlobal": "0"}])

    def _exportTime(self, call: Call) -> bytes:  # noqa: N802
        time = _el(
            "time",
            None,
            _el("stratum", {"id": 1, "code": "year", "name": "Year"}),
            _el("stratum", {"id": 3, "code": "month", "name": "Month"}),
            _el(
                "period",
                {
                    "id": 100,
                    "code": "2025",
                    "label": "FY2025",
                    "stratumId": 1,
                    "start": "01/01/2025",
                    "end": "12/31/2025",
                },
            ),
            *(
                _el(
                    "period",
                    {"id": 101 + i, "code": m, "label": m, "stratumId": 3, "start": f"{m[:2]}/01/{m[3:]}", "end": ""},
                )
                for i, m in enumerate(MONTHS)
            ),
        )
        return _response(_el("output", None, time))

    def _exportTransactionDefinition(self, call: Call) -> bytes:  # noqa: N802
        definition = _el(
            "transactionDefinition",
            {"id": 1, "name": "Invoices"},
            _el("columns", None, _el("column", {"name": "Amount", "type": "number"})),
        )
        return _response(_el("output", None, _el("transactionDefinitions", None, definition)))

    def _exportModeledSheet(self, call: Call) -> bytes:  # noqa: N802
        name = call.find("modeledSheet").get("name")  # type: ignore[union-attr]
        sheet = _el(
            "modeledSheet",
            {"id": 5, "name": name, "type": "cube", "isGlobal": "0"},
            _el(
                "columns", None, _el("column", {"name": "Employee", "type": "text"}), _el("column", {"name": "Salary"})
            ),
        )
        return _response(_el("output", None, sheet))

    def _exportSheetDefinition(self, call: Call) -> bytes:  # noqa: N802
        name = call.find("sheet").get("name")  # type: ignore[union-attr]
        sheet = _el(
            "sheet",
            {"id": 5, "name": name},
            _el("column", {"id": 1, "name": "Employee", "type": "text", "isRequired": "1"}),
            _el("column", {"id": 2, "name": "Salary", "type": "number", "isRequired": "0"}),
        )
        return _response(_el("output", None, sheet))

    def _exportConfigurableModelData(self, call: Call) -> bytes:  # noqa: N802
        job = call.find("job")
        page = int(job.get("pageNumber", "1")) if job is not None else 1
        header = "Employee,Salary,Level\r\n" if page == 1 else ""
        rows = "".join(
            f'"Person {page}-{n}, Jr.",{1000 * page + n}.50,Europe & Asia\r\n' for n in range(self.cmd_rows_per_page)
        )
        data = _el("data")
        data.text = header + rows
        marker = _el("job", {"jobNumber": 77, "pageNumber": page, "isLastPage": "1" if page >= self.cmd_pages else "0"})
        return _response(_el("output", None, data, marker))

    # -- exportData ----------------------------------------------------------------------------------------------

    def _exportData(self, call: Call) -> Iterator[bytes]:  # noqa: N802
        version = call.find("version").get("name", "")  # type: ignore[union-attr]
        dimensions = [d.get("name", "") for d in call.root.iterfind("dimensions/dimension")]
        return self.data_body(version, dimensions)

    def data_body(self, version: str, dimensions: list[str]) -> Iterator[bytes]:
        """The answer in pieces: declaration, the CSV in CDATA in chunks of rows, the end."""
        yield b'<?xml version="1.0" encoding="UTF-8"?>\n<response success="true"><output><![CDATA['
        batch: list[str] = []
        for line in self.data_lines(version, dimensions):
            batch.append(line)
            if len(batch) >= 2000:
                yield "".join(batch).encode()
                batch.clear()
        yield "".join(batch).encode() + b"]]></output></response>"

    def data_lines(self, version: str, dimensions: list[str]) -> Iterator[str]:
        """CSV lines (header first): every account (MNPI too) x level x dimension value."""
        dim_columns = "".join(f",{d} Name" for d in dimensions)
        yield "Account Name,Account Code,Level Name" + dim_columns + "," + ",".join(MONTHS) + "\r\n"
        overrides = self.cells.get(version, {})
        accounts = [
            (code, name)
            for code, name, children in ACCOUNTS
            for code, name in [(code, name), *[(c, n) for c, n, _ in children]]
        ]
        levels = ['Nörth, "America"', "Europe & Asia"]
        if self.data_rows is not None:
            for n in range(self.data_rows):
                allowed = n % self.allowed_every == 0
                code, name = (ALLOWED[n % 3], "Allowed") if allowed else (MNPI[n % 2], "Secret MNPI")
                yield f"{name},{code},Level {n}{',X' * len(dimensions)},{n}.25,-{n}.5,{BIG}\r\n"
            return
        for code, name in accounts:
            for index, level in enumerate(levels):
                for value in ["Americas", 'EMEA "East"'] if dimensions else [None]:
                    cells = {m: f"{index + 1}{i}{len(code)}.{i}5" for i, m in enumerate(MONTHS)}
                    cells[MONTHS[2]] = "" if code == "5000" else BIG
                    cells.update(overrides.get((code, level), {}))
                    fields = [name, code, level, *([value] * len(dimensions)), *(cells[m] for m in MONTHS)]
                    yield ",".join(_csv_field(f) for f in fields) + "\r\n"


def _csv_field(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeAdaptive

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parts = self.path.rstrip("/").split("/")
        if len(parts) < 3 or parts[-2] != "api" or not parts[-1].startswith("v"):
            self._send(404, {"Content-Type": "text/html"}, b"<html>not found</html>")
            return
        try:
            root = fromstring(raw)
        except Exception:
            self._send(200, {"Content-Type": "text/xml"}, failure([("error-invalid-request", "Malformed XML")]))
            return
        call = Call(root.get("method", ""), root, parts[-1])
        try:
            status, headers, body, fault = self.fake.answer(call)
        except Exception as exc:
            self.fake.errors.append(exc)
            self._send(500, {"Content-Type": "text/plain"}, repr(exc).encode())
            return
        if isinstance(body, bytes):
            if fault is not None and (fault.drop_after is not None or fault.hold is not None):
                body = iter([body])
            else:
                self._send(status, headers, body)
                return
        self._send_chunked(status, headers, body, fault)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, status: int, headers: dict[str, str], pieces: Iterator[bytes], fault: Fault | None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        data = b"".join(pieces) if fault is not None else None
        if data is not None and fault is not None:
            cut = fault.drop_after if fault.drop_after is not None else len(data) // 2
            self._chunk(data[:cut])
            if fault.hold is not None:
                fault.held.set()
                fault.hold.wait()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        for piece in pieces:
            self._chunk(piece)
            self.fake.bytes_sent += len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated; print the api_url first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-rows", type=int, default=None, help="rows per exportData answer (default: a few)")
    parser.add_argument("--allowed-every", type=int, default=50, help="with --data-rows: 1 = every row allowed")
    parser.add_argument("--password", default=PASSWORD)
    args = parser.parse_args(argv)
    fake = FakeAdaptive(data_rows=args.data_rows, password=args.password, allowed_every=args.allowed_every).start()
    print(fake.url, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
