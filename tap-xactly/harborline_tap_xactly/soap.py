"""The Connect SOAP API (the tenant's Xactly.wsdl) through zeep: one FULL_TABLE stream per Incent object.

For accounts without a SQL driver. What is documented is the shape, not the detail: one WSDL, a login giving a
session id, CRUD and search on the Incent objects (``PersonWSO``, ``PositionWSO``, ...). So this module assumes:

* ``login(username, password)`` answers a ``sessionId``; every later call carries it in a ``SessionHeader`` SOAP
  header; a fault that says the session is invalid or expired means: log in again once and repeat the call;
* ``search(searchObject)`` takes an example object (an empty instance of the object's type, sent with its
  ``xsi:type``) and answers every matching object: no paging and no modified-since filter are documented, so each
  run reads each object whole (FULL_TABLE; the README says so);
* every object has an ``id`` (its key); its other fields, as the WSDL declares them, are the stream's columns.

zeep is configured to load nothing but the configured WSDL (no ``xsd:import``, no external entity, no DTD).
"""

from __future__ import annotations

import datetime
import decimal
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import requests
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.streams import Stream
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.helpers import serialize_object
from zeep.transports import Transport

from harborline_singer_shared.plugin import STREAM_ATTR
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin
from harborline_tap_xactly.client import LoginRefusedError, reason

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap

__all__ = ["DEFAULT_SOAP_OBJECTS", "SoapObjectStream", "SoapSession", "soap_streams", "stream_name_of"]

DEFAULT_SOAP_OBJECTS = (
    "PersonWSO",
    "PositionWSO",
    "TitleWSO",
    "BusinessGroupWSO",
    "CalendarWSO",
    "PeriodWSO",
    "PlanWSO",
    "CommissionWSO",
    "CreditWSO",
    "BonusWSO",
    "CompOrderItemWSO",
)
KEY_FIELD = "id"
_TIMEOUT_S = 300
_SESSION_FAULT = re.compile(r"session", re.IGNORECASE)
_SESSION_GONE = re.compile(r"invalid|expired|timed? ?out|not found|unknown", re.IGNORECASE)
_XSD_KINDS = {
    "string": "string",
    "normalizedString": "string",
    "token": "string",
    "boolean": "boolean",
    "long": "integer",
    "int": "integer",
    "integer": "integer",
    "short": "integer",
    "decimal": "number",
    "double": "number",
    "float": "number",
    "dateTime": "date-time",
    "date": "date",
}


def stream_name_of(object_name: str) -> str:
    """``CompOrderItemWSO`` -> ``soap_comp_order_item``."""
    stem = object_name.removesuffix("WSO")
    return "soap_" + re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower()


class SoapError(FatalAPIError):
    """The SOAP API failed in a way retrying cannot fix (a fault, an unreachable WSDL)."""


class _OnlyTheWsdlTransport(Transport):
    """A zeep transport that loads the configured WSDL and nothing else (no schema imports from anywhere)."""

    def __init__(self, allowed: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # zeep has no annotations here
        self._allowed = allowed

    def load(self, url: str) -> bytes:
        """Load the WSDL itself; refuse every other document it points to."""
        if url != self._allowed:
            raise SoapError(f"the WSDL refers to another document ({url!r}); this tap loads only the WSDL itself")
        return super().load(url)  # type: ignore[no-any-return,no-untyped-call]


class SoapSession:
    """The WSDL, the zeep client and the session id; logs in on first use and again when the session expires."""

    def __init__(self, config: dict[str, Any], logger: logging.Logger) -> None:
        self._config = config
        self._logger = logger
        self._session_id: str | None = None
        self.logins = 0
        location = config.get("wsdl_path") or config.get("wsdl_url")
        self.setting = "wsdl_path" if config.get("wsdl_path") else "wsdl_url"
        if config.get("wsdl_path"):
            location = str(Path(str(location)).expanduser().resolve())
        self.location = str(location)
        # zeep logs whole envelopes (the login's password among them) at DEBUG: never let them through.
        logging.getLogger("zeep").setLevel(logging.WARNING)
        settings = Settings(strict=False, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        transport = _OnlyTheWsdlTransport(self.location, timeout=_TIMEOUT_S, operation_timeout=_TIMEOUT_S)
        try:
            self.client = Client(self.location, settings=settings, transport=transport)  # type: ignore[no-untyped-call]  # zeep has no annotations here
        except SoapError as exc:
            raise SoapError(f"Setting '{self.setting}': {exc}") from None
        except (OSError, requests.RequestException, TransportError, ZeepError, ValueError) as exc:
            raise SoapError(f"Setting '{self.setting}': the WSDL cannot be loaded ({reason(exc)})") from None

    def object_type(self, object_name: str) -> Any:
        """The zeep type of an Incent object, or None when the WSDL does not define it."""
        for namespace in self.client.wsdl.types.namespaces:
            try:
                return self.client.get_type(f"{{{namespace}}}{object_name}")  # type: ignore[no-untyped-call]
            except (ZeepError, LookupError, ValueError):
                continue
        return None

    def _login(self) -> str:
        try:
            result = self.client.service.login(
                username=self._config.get("username") or "", password=self._config.get("password") or ""
            )
        except Fault as fault:
            raise LoginRefusedError(
                f"Xactly refused the SOAP login: check `username`/`password` (fault: {fault.message})"
            ) from None
        session_id = getattr(result, "sessionId", result)
        if not isinstance(session_id, str) or not session_id:
            raise SoapError("the SOAP login answered no sessionId")
        self.logins += 1
        self._logger.info("SOAP login %d done", self.logins)
        return session_id

    def call(self, operation: str, **arguments: Any) -> Any:
        """Call an operation with the session header; log in again once when the session has expired."""
        for attempt in (1, 2):
            if self._session_id is None:
                self._session_id = self._login()
            element = self.client.get_element(self._session_header_qname())  # type: ignore[no-untyped-call]
            header = element(sessionId=self._session_id)
            try:
                return getattr(self.client.service, operation)(**arguments, _soapheaders=[header])
            except Fault as fault:
                text = f"{fault.code or ''} {fault.message or ''}"
                if attempt == 1 and _SESSION_FAULT.search(text) and _SESSION_GONE.search(text):
                    self._logger.info("SOAP session expired (%s); logging in again", fault.message)
                    self._session_id = None
                    continue
                raise SoapError(f"SOAP {operation} failed: fault {fault.message!r}") from None
            except (requests.RequestException, TransportError) as exc:
                raise SoapError(f"SOAP {operation} failed: {reason(exc)}") from None
        raise SoapError(f"SOAP {operation} failed: the session expired again right after a new login")

    def _session_header_qname(self) -> str:
        for namespace in self.client.wsdl.types.namespaces:
            try:
                self.client.get_element(f"{{{namespace}}}SessionHeader")  # type: ignore[no-untyped-call]
            except (ZeepError, LookupError, ValueError):
                continue
            return f"{{{namespace}}}SessionHeader"
        raise SoapError(f"Setting '{self.setting}': the WSDL defines no SessionHeader element")

    def search(self, object_name: str) -> list[Any]:
        """Every object of a type, by example: an empty instance of the type."""
        example = self.object_type(object_name)()
        result = self.call("search", searchObject=example)
        items = getattr(result, "results", result)
        if items is None:
            return []
        return list(items) if isinstance(items, list) else [items]


def _fields(xsd_type: Any) -> list[tuple[str, str]]:
    """(name, kind) of each element of an object type, inherited ones included."""
    fields = []
    for name, element in xsd_type.elements:
        qname = getattr(element.type, "qname", None)
        local = qname.localname if qname is not None else ""
        fields.append((name, _XSD_KINDS.get(local, "string")))
    return fields


def _schema_of(kind: str) -> dict[str, Any]:
    if kind in {"date-time", "date"}:
        return {"type": ["string", "null"], "format": kind}
    return {"type": [kind, "null"]}


class SoapObjectStream(PseudonymizedStreamMixin, Stream):
    """One Incent object read by ``search``; FULL_TABLE (the API documents no modified-since filter or paging)."""

    replication_key = None

    def __init__(self, tap: Tap, object_name: str, session: Callable[[], SoapSession], xsd_type: Any) -> None:
        self.object_name = object_name
        self._session = session
        self._fields = _fields(xsd_type)
        super().__init__(tap=tap, name=stream_name_of(object_name))
        self.primary_keys = [KEY_FIELD] if any(n == KEY_FIELD for n, _ in self._fields) else []

    @property
    def schema(self) -> dict[str, Any]:
        """The object's fields as the WSDL declares them."""
        return {"type": "object", "properties": {name: _schema_of(kind) for name, kind in self._fields}}

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """Every object of the type, each field converted to JSON (date-times in UTC, decimals exact)."""
        zone_name = str(self.config.get("source_timezone") or "UTC")
        zone = ZoneInfo(zone_name)
        kinds = dict(self._fields)
        try:
            items = self._session().search(self.object_name)
        except FatalAPIError as exc:
            setattr(exc, STREAM_ATTR, self.name)  # the one error line names the stream
            raise
        for item in items:
            raw = serialize_object(item, target_cls=dict)  # type: ignore[no-untyped-call]
            record = {}
            for name, kind in kinds.items():
                record[name] = _convert(raw.get(name) if isinstance(raw, dict) else None, kind, zone)
            yield record


def _convert(value: Any, kind: str, zone: ZoneInfo) -> Any:
    if value is None:
        return None
    if kind == "date-time" and isinstance(value, datetime.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return aware.astimezone(datetime.UTC).isoformat()
    if kind == "date" and isinstance(value, datetime.date):
        return value.isoformat()
    if kind == "integer" and isinstance(value, decimal.Decimal):
        return int(value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    return value


def soap_streams(tap: Tap, session: Callable[[], SoapSession]) -> list[Stream]:
    """One stream per name in ``soap_objects``; a name the WSDL does not define is refused, naming the setting."""
    names = list(dict.fromkeys(tap.config.get("soap_objects") or DEFAULT_SOAP_OBJECTS))
    soap = session()
    streams: list[Stream] = []
    unknown = []
    for name in names:
        xsd_type = soap.object_type(str(name))
        if xsd_type is None:
            unknown.append(str(name))
            continue
        streams.append(SoapObjectStream(tap, str(name), session, xsd_type))
    if unknown:
        raise ConfigValidationError(
            f"Setting 'soap_objects' names {', '.join(repr(u) for u in unknown)}, which the WSDL "
            f"({soap.setting}) does not define."
        )
    return streams
