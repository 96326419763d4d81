"""A local SOAP server shaped like Xactly's Connect SOAP API, with a WSDL of our own.

What is public about the real API is its shape (one WSDL, a login giving a session id, search by example on the
Incent objects ``PersonWSO``, ``PositionWSO``, ...); this server serves exactly that shape:

* ``GET /xactly?wsdl``: the WSDL (document/literal; objects extend ``XObject`` with id, name, createdDate,
  modifiedDate);
* ``POST /xactly`` ``login(username, password)`` -> ``loginResponse/sessionId``, or a SOAP fault for bad credentials;
* ``POST /xactly`` ``search(searchObject xsi:type=...)`` with a ``SessionHeader`` -> ``searchResponse/results*`` of
  that type, or a fault ``INVALID_SESSION`` when the session id is unknown or has expired.

Run it as a script to print its WSDL URL first and serve until terminated.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import threading
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree

NS = "urn:harborline:fake:xactly"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
USERNAME = "soap-user@example.com"
PASSWORD = "zz-Soap-Pass-6620"
EXACT = Decimal("98765432109876543210.123456789")

#: Each object's own fields (name -> XSD type), beside XObject's id, name, createdDate, modifiedDate.
OBJECTS: dict[str, dict[str, str]] = {
    "PersonWSO": {
        "firstName": "string",
        "middleName": "string",
        "lastName": "string",
        "email": "string",
        "employeeId": "string",
        "hireDate": "date",
    },
    "PositionWSO": {"personId": "long", "titleId": "long", "businessGroupId": "long"},
    "TitleWSO": {"description": "string"},
    "BusinessGroupWSO": {"description": "string"},
    "CalendarWSO": {"description": "string"},
    "PeriodWSO": {"calendarId": "long", "startDate": "date", "endDate": "date"},
    "PlanWSO": {"periodId": "long", "active": "boolean"},
    "CommissionWSO": {"amount": "decimal", "positionId": "long"},
    "CreditWSO": {"amount": "decimal", "positionId": "long", "incentiveDate": "date"},
    "BonusWSO": {"amount": "decimal"},
    "CompOrderItemWSO": {"orderCode": "string", "amount": "decimal"},
}
BASE_FIELDS = {"id": "long", "name": "string", "createdDate": "dateTime", "modifiedDate": "dateTime"}


def wsdl(address: str) -> str:
    """The WSDL, with the service at ``address``."""
    types = []
    for name, fields in OBJECTS.items():
        elements = "".join(
            f'<xsd:element name="{f}" type="xsd:{t}" minOccurs="0" nillable="true"/>' for f, t in fields.items()
        )
        types.append(
            f'<xsd:complexType name="{name}"><xsd:complexContent><xsd:extension base="tns:XObject">'
            f"<xsd:sequence>{elements}</xsd:sequence></xsd:extension></xsd:complexContent></xsd:complexType>"
        )
    base = "".join(
        f'<xsd:element name="{f}" type="xsd:{t}" minOccurs="0" nillable="true"/>' for f, t in BASE_FIELDS.items()
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}" targetNamespace="{NS}" name="XactlyConnect">
 <types>
  <xsd:schema targetNamespace="{NS}" elementFormDefault="qualified">
   <xsd:complexType name="XObject"><xsd:sequence>{base}</xsd:sequence></xsd:complexType>
   {"".join(types)}
   <xsd:element name="login"><xsd:complexType><xsd:sequence>
     <xsd:element name="username" type="xsd:string"/><xsd:element name="password" type="xsd:string"/>
   </xsd:sequence></xsd:complexType></xsd:element>
   <xsd:element name="loginResponse"><xsd:complexType><xsd:sequence>
     <xsd:element name="sessionId" type="xsd:string"/>
   </xsd:sequence></xsd:complexType></xsd:element>
   <xsd:element name="SessionHeader"><xsd:complexType><xsd:sequence>
     <xsd:element name="sessionId" type="xsd:string"/>
   </xsd:sequence></xsd:complexType></xsd:element>
   <xsd:element name="search"><xsd:complexType><xsd:sequence>
     <xsd:element name="searchObject" type="tns:XObject"/>
   </xsd:sequence></xsd:complexType></xsd:element>
   <xsd:element name="searchResponse"><xsd:complexType><xsd:sequence>
     <xsd:element name="results" type="tns:XObject" minOccurs="0" maxOccurs="unbounded"/>
   </xsd:sequence></xsd:complexType></xsd:element>
  </xsd:schema>
 </types>
 <message name="loginRequest"><part name="parameters" element="tns:login"/></message>
 <message name="loginResponse"><part name="parameters" element="tns:loginResponse"/></message>
 <message name="searchRequest"><part name="parameters" element="tns:search"/></message>
 <message name="searchResponse"><part name="parameters" element="tns:searchResponse"/></message>
 <portType name="XactlyConnectPort">
  <operation name="login"><input message="tns:loginRequest"/><output message="tns:loginResponse"/></operation>
  <operation name="search"><input message="tns:searchRequest"/><output message="tns:searchResponse"/></operation>
 </portType>
 <binding name="XactlyConnectBinding" type="tns:XactlyConnectPort">
  <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
  <operation name="login"><soap:operation soapAction="login"/>
   <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  <operation name="search"><soap:operation soapAction="search"/>
   <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
 </binding>
 <service name="XactlyConnectService">
  <port name="XactlyConnectPort" binding="tns:XactlyConnectBinding"><soap:address location="{address}"/></port>
 </service>
</definitions>
"""


def objects_of(name: str, count: int) -> list[dict[str, Any]]:
    """The objects the server holds of one type: deterministic values for each field."""
    fields = {**BASE_FIELDS, **OBJECTS[name]}
    items = []
    for n in range(1, count + 1):
        item: dict[str, Any] = {}
        for field, kind in fields.items():
            if field == "id":
                item[field] = n
            elif field == "email":
                item[field] = f"person{n}@example.com"
            elif kind == "string":
                item[field] = f"{field} {n}"
            elif kind == "long":
                item[field] = n * 10
            elif kind == "decimal":
                item[field] = EXACT if n == 1 else Decimal(n) / 4
            elif kind == "boolean":
                item[field] = n % 2 == 0
            elif kind == "date":
                item[field] = datetime.date(2024, 1, n)
            elif kind == "dateTime":
                item[field] = datetime.datetime(2024, 2, n, 10, 30)  # noqa: DTZ001 - xsd:dateTime without a zone
        items.append(item)
    return items


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return escape(str(value))


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:x="{NS}" '
        f'xmlns:xsi="{XSI}"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>'
    ).encode()


def _fault(text: str) -> bytes:
    return _envelope(
        f"<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>{escape(text)}</faultstring></soapenv:Fault>"
    )


class FakeXactlySoap:
    """The server; its knobs are plain attributes tests change while it runs."""

    def __init__(self, *, count: int = 3, port: int = 0) -> None:
        self.count = count
        self.password = PASSWORD
        #: After this many successful searches every session issued so far expires (None: never).
        self.expire_after: int | None = None
        #: Every session id is refused (a server that never accepts a session).
        self.refuse_sessions = False
        self.logins = 0
        self.searches: list[str] = []
        self._sessions: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True  # a client keeping a connection open must not hold up stop()
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The service address."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/xactly"

    @property
    def wsdl_url(self) -> str:
        """Where the WSDL is served."""
        return self.url + "?wsdl"

    def start(self) -> FakeXactlySoap:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeXactlySoap:  # noqa: PYI034 - a test helper, never subclassed
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """The status and envelope answering one request."""
        root = ElementTree.fromstring(body)
        request = root.find(f"{{{SOAP_ENV}}}Body")[0]  # type: ignore[index]
        operation = request.tag.rsplit("}", 1)[-1]
        with self._lock:
            if operation == "login":
                username = request.findtext(f"{{{NS}}}username")
                password = request.findtext(f"{{{NS}}}password")
                if (username, password) != (USERNAME, self.password):
                    return HTTPStatus.INTERNAL_SERVER_ERROR, _fault("LOGIN_FAILED: invalid username or password")
                self.logins += 1
                session = f"session-{self.logins}"
                self._sessions.add(session)
                return HTTPStatus.OK, _envelope(
                    f"<x:loginResponse><x:sessionId>{session}</x:sessionId></x:loginResponse>"
                )
            if operation == "search":
                session = root.findtext(f"{{{SOAP_ENV}}}Header/{{{NS}}}SessionHeader/{{{NS}}}sessionId")
                if self.refuse_sessions or session not in self._sessions:
                    return HTTPStatus.INTERNAL_SERVER_ERROR, _fault(
                        "INVALID_SESSION: the session is invalid or has expired"
                    )
                example = request.find(f"{{{NS}}}searchObject")
                xsi_type = example.get(f"{{{XSI}}}type", "") if example is not None else ""
                name = xsi_type.rsplit(":", 1)[-1]
                if name not in OBJECTS:
                    return HTTPStatus.INTERNAL_SERVER_ERROR, _fault(f"UNKNOWN_OBJECT: {name!r}")
                self.searches.append(name)
                if self.expire_after is not None and len(self.searches) >= self.expire_after:
                    self.expire_after = None
                    self._sessions.clear()  # the next call finds its session expired
                results = "".join(
                    f'<x:results xsi:type="x:{name}">'
                    + "".join(f"<x:{k}>{_text(v)}</x:{k}>" for k, v in item.items())
                    + "</x:results>"
                    for item in objects_of(name, self.count)
                )
                return HTTPStatus.OK, _envelope(f"<x:searchResponse>{results}</x:searchResponse>")
        return HTTPStatus.INTERNAL_SERVER_ERROR, _fault(f"UNKNOWN_OPERATION: {operation}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = wsdl(fake.url).encode()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                status, body = fake.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main() -> None:
    """Serve until terminated; the WSDL URL is the first line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    server = FakeXactlySoap(count=args.count, port=args.port)
    print(server.wsdl_url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()


if __name__ == "__main__":
    main()
