"""Clari's asynchronous forecast export, and the base stream every Clari stream shares.

One export per Forecast Tab and fiscal quarter (``https://api.clari.com/v4``, header ``apikey``):

1. ``POST /export/forecast/{forecastId}`` with ``timePeriod``, ``includeHistorical``, ``typesToExport``,
   ``exportFormat: "JSON"`` (and ``currency``/``scopeId`` when set) answers ``{"jobId": ...}``;
2. ``GET /export/jobs/{jobId}`` every ``poll_interval_seconds`` answers the job's status, as ``{"job": {"status"}}``
   (production) or ``{"status"}`` (the published spec): SCHEDULED and STARTED mean wait, DONE means ready; FAILED,
   ABORTED and CANCELLED end the export, and so does ``max_wait_seconds`` without DONE (the job is then cancelled
   with ``PATCH /export/jobs/{jobId}`` ``{"type": "CANCEL"}``);
3. ``GET /export/jobs/{jobId}/results`` is one JSON document with the arrays ``entries``, ``users``, ``fields``,
   ``timePeriods`` and ``timeFrames``, from which all five streams are filled.

The document can be large (one entry per user, week and forecast field), so it is written to a temporary file and
decoded from a memory map with msgspec: the small look-up arrays are decoded whole, entries are kept as raw slices
and decoded one by one (numbers as :class:`~decimal.Decimal`, never float) only when emitted. Before anything of an
export is emitted its period is checked: Clari silently answers an unknown period with the current quarter.

Every HTTP call goes through the shared retry policy (``send_with_retry``); a rejected API key is one
:class:`~harborline_singer_shared.http.AuthenticationError` naming ``api_key``. Any other failure of one export is an
:class:`ExportFailedError`: the tap records it, goes on with the other exports and reports all of them at the end.
"""

from __future__ import annotations

import contextlib
import mmap
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import msgspec
import requests
from singer_sdk.helpers.conform import TypeConformanceLevel

from harborline_singer_shared.auth import ApiKeyHeaderAuth, api_key_header_auth_from_config
from harborline_singer_shared.http import HarborlineRESTStream, check_response
from harborline_singer_shared.output import AllSelectedFastPathMixin
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin
from harborline_singer_shared.retry import RetriesExhaustedError, send_with_retry

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context, Record

    from harborline_singer_shared.retry import Clock

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_TYPES_TO_EXPORT",
    "ClariStream",
    "ExportFailedError",
    "ExportKey",
    "ExportRunner",
    "ExportSettings",
    "Lookups",
]

DEFAULT_API_URL = "https://api.clari.com/v4"
DEFAULT_TYPES_TO_EXPORT = ("forecast", "quota", "forecast_updated", "adjustment")
IN_PROGRESS = frozenset({"SCHEDULED", "STARTED"})
DONE = "DONE"
FAILED = frozenset({"FAILED", "ABORTED", "CANCELLED"})
_DOWNLOAD_CHUNK = 1 << 20
_VENDOR_TEXT_LIMIT = 120


@dataclass(frozen=True, order=True)
class ExportKey:
    """One export: a Forecast Tab and a fiscal quarter."""

    forecast_id: str
    period: str

    def __str__(self) -> str:
        return f"forecast '{self.forecast_id}', period '{self.period}'"


class ExportFailedError(Exception):
    """One export failed; the others still run. The message is the one line the user sees."""

    def __init__(self, key: ExportKey, problem: str, *, job_id: str | None = None, status: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.job_id = job_id
        self.status = status
        where = str(key) + (f", job '{job_id}'" if job_id else "")
        super().__init__(f"Clari export failed: {where}: {problem}")


@dataclass(frozen=True)
class ExportSettings:
    """What each export asks for and how long it may take (from the tap config)."""

    include_historical: bool = True
    types_to_export: tuple[str, ...] = DEFAULT_TYPES_TO_EXPORT
    currency: str | None = None
    scope_id: str | None = None
    poll_interval_seconds: float = 15.0
    max_wait_seconds: float = 1800.0

    def body(self, period: str) -> dict[str, Any]:
        """The JSON body of the export request."""
        body: dict[str, Any] = {
            "timePeriod": period,
            "includeHistorical": self.include_historical,
            "typesToExport": list(self.types_to_export),
            "exportFormat": "JSON",
        }
        if self.currency:
            body["currency"] = self.currency
        if self.scope_id:
            body["scopeId"] = self.scope_id
        return body


@dataclass
class Lookups:
    """The small arrays of one export's document, as the vendor wrote them."""

    users: list[dict[str, Any]] = field(default_factory=list)
    fields: list[dict[str, Any]] = field(default_factory=list)
    time_periods: list[dict[str, Any]] = field(default_factory=list)
    time_frames: list[dict[str, Any]] = field(default_factory=list)


class _ResultsDocument(msgspec.Struct):
    """The results document: entries kept raw (decoded one at a time), the look-up arrays decoded."""

    entries: list[msgspec.Raw] | None = None
    users: list[dict[str, Any]] | None = None
    fields: list[dict[str, Any]] | None = None
    timePeriods: list[dict[str, Any]] | None = None  # noqa: N815 - the vendor's name
    timeFrames: list[dict[str, Any]] | None = None  # noqa: N815 - the vendor's name


class _EntryPeriod(msgspec.Struct):
    """Only the period of an entry, for the check before anything is emitted."""

    timePeriodId: str | int | None = None  # noqa: N815 - the vendor's name


_DOCUMENT_DECODER = msgspec.json.Decoder(_ResultsDocument, float_hook=Decimal)
_ENTRY_PERIOD_DECODER = msgspec.json.Decoder(_EntryPeriod, float_hook=Decimal)
#: Entries as plain dicts: numbers with a fraction or exponent become Decimal (exact), whole numbers int.
ENTRY_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _vendor_error(response: requests.Response) -> str:
    """A short, safe description of an error answer: status and the vendor's error code, never the whole body."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason or ""
    text = f"HTTP {response.status_code} {phrase}".strip()
    try:
        body = response.json()
    except ValueError:
        return text
    details = []
    if isinstance(body, dict):
        for name in ("error", "code", "errorCode", "message"):
            value = body.get(name)
            if isinstance(value, str) and value and value not in details:
                details.append(value[:_VENDOR_TEXT_LIMIT])
    return f"{text} ({'; '.join(details)})" if details else text


def job_status(body: Any) -> str | None:
    """The job's status from a poll answer: ``{"job": {"status"}}`` (production) or ``{"status"}`` (spec)."""
    if not isinstance(body, dict):
        return None
    job = body.get("job")
    status = job.get("status") if isinstance(job, dict) else body.get("status")
    return status.upper() if isinstance(status, str) else None


def _job_id(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    job = body.get("job")
    value = body.get("jobId", job.get("jobId") if isinstance(job, dict) else None)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


class ClariStream(AllSelectedFastPathMixin, PseudonymizedStreamMixin, HarborlineRESTStream):
    """Base of the five streams: URL, ``apikey`` header, the shared retry policy, and the export runner."""

    auth_settings_hint: ClassVar[str] = "`api_key`"
    #: Records are built field by field from the vendor's arrays (see streams.py), so the SDK's per-value type
    #: conversion has nothing to convert; skipping it matters at 200,000 entries per export.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    @property
    def url_base(self) -> str:
        """The API base, ``https://api.clari.com/v4`` unless ``api_url`` says otherwise."""
        return str(self.config.get("api_url") or DEFAULT_API_URL).rstrip("/")

    @property
    def authenticator(self) -> ApiKeyHeaderAuth:
        """The API token in the ``apikey`` header."""
        return api_key_header_auth_from_config(self.config, "api_key", header="apikey")

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: each run exports only the look-back, so an ACTIVATE_VERSION would delete older quarters' rows."""
        return False

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Pseudonymize the configured fields; a stream with none configured skips the per-record walk."""
        wanted = self.__dict__.get("_clari_pseudonymized")
        if wanted is None:
            pseudonymizer = self.pseudonymizer
            wanted = bool(pseudonymizer is not None and pseudonymizer.paths_for(self.name))
            self.__dict__["_clari_pseudonymized"] = wanted
        return super().post_process(row, context) if wanted else row

    @cached_property
    def download_session(self) -> requests.Session:
        """A session whose responses are streamed, so a large results document never sits in memory twice."""
        session = requests.Session()
        session.stream = True
        return session

    def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        download: bool = False,
    ) -> requests.Response:
        """Send one request through the shared retry policy; raise for a rejected API key (401/403).

        Other statuses are returned: what a 400 or a 404 means depends on the step of the export.
        """
        request = requests.Request(method, self.url_base + path, headers=self.http_headers, json=json_body)
        prepared = self.authenticator(self.requests_session.prepare_request(request))
        limiter = self.rate_limiter
        response = send_with_retry(
            self.download_session if download else self.requests_session,
            prepared,
            self.retry_policy,
            timeout=self.request_timeouts,
            logger=self.logger,
            before_attempt=limiter.acquire if limiter is not None else None,
        )
        if response.status_code in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
            response.close()
            check_response(response, auth_settings_hint=self.auth_settings_hint)
        return response

    @property
    def export_runner(self) -> ExportRunner:
        """The tap's runner: each export runs once per sync and feeds every stream."""
        return self._tap.export_runner  # type: ignore[attr-defined,no-any-return]


class ExportRunner:
    """Runs the exports of one sync, once each, and remembers what every stream needs from them.

    ``forecast_entries`` (synced first) streams each export's entries and leaves the look-up arrays here; the other
    streams read them from here, or run the export themselves when ``forecast_entries`` is not selected. A failed
    export is remembered too, so it is neither retried by the next stream nor reported twice.
    """

    def __init__(self, keys: list[ExportKey], settings: ExportSettings) -> None:
        self.keys = keys
        self.settings = settings
        self.lookups: dict[ExportKey, Lookups] = {}
        self.failures: dict[ExportKey, ExportFailedError] = {}

    def entries(self, client: ClariStream) -> Iterator[tuple[ExportKey, dict[str, Any]]]:
        """Run every export (except those that already failed) and yield its entries as dicts."""
        for key in self.keys:
            if key in self.failures:
                continue
            try:
                for entry in self._run(client, key, want_entries=True):
                    yield key, entry
            except ExportFailedError as failure:
                self._fail(client, failure)

    def lookups_of_every_export(self, client: ClariStream) -> Iterator[tuple[ExportKey, Lookups]]:
        """Yield each export's look-up arrays, running the exports that have not run yet in this sync."""
        for key in self.keys:
            if key in self.failures:
                continue
            if key not in self.lookups:
                try:
                    for _ in self._run(client, key, want_entries=False):
                        pass
                except ExportFailedError as failure:
                    self._fail(client, failure)
                    continue
            yield key, self.lookups[key]

    def _fail(self, client: ClariStream, failure: ExportFailedError) -> None:
        self.failures[failure.key] = failure
        client.logger.warning("%s (the other exports go on)", failure)

    # -- one export ---------------------------------------------------------------------------------------------

    def _run(self, client: ClariStream, key: ExportKey, *, want_entries: bool) -> Iterator[dict[str, Any]]:
        job_id = self._start(client, key)
        self._wait(client, key, job_id)
        yield from self._results(client, key, job_id, want_entries=want_entries)

    def _start(self, client: ClariStream, key: ExportKey) -> str:
        path = f"/export/forecast/{quote(key.forecast_id, safe='')}"
        response = self._call(client, key, None, "POST", path, json_body=self.settings.body(key.period))
        if response.status_code >= HTTPStatus.BAD_REQUEST:
            raise ExportFailedError(key, f"the export request was refused: {_vendor_error(response)}")
        job_id = _job_id(_json(response))
        if job_id is None:
            raise ExportFailedError(key, "the export request was accepted but its answer has no jobId")
        client.logger.info("Clari export started: %s, job '%s'", key, job_id)
        return job_id

    def _wait(self, client: ClariStream, key: ExportKey, job_id: str) -> None:
        clock: Clock = client.clock
        started = clock.monotonic()
        path = f"/export/jobs/{quote(job_id, safe='')}"
        polls = 0
        while True:
            response = self._call(client, key, job_id, "GET", path)
            polls += 1
            if response.status_code >= HTTPStatus.BAD_REQUEST:
                raise ExportFailedError(key, f"polling the job failed: {_vendor_error(response)}", job_id=job_id)
            status = job_status(_json(response))
            if status == DONE:
                client.logger.info("Clari export done: %s, job '%s' (%d poll(s))", key, job_id, polls)
                return
            if status in FAILED:
                raise ExportFailedError(key, f"the job ended with status {status}", job_id=job_id, status=status)
            if status not in IN_PROGRESS:
                client.logger.warning(
                    "Clari job '%s' has the unknown status %r; waiting as if in progress", job_id, status
                )
            waited = clock.monotonic() - started
            if waited >= self.settings.max_wait_seconds:
                cancelled = self._cancel(client, key, job_id, path)
                raise ExportFailedError(
                    key,
                    f"no DONE within max_wait_seconds ({self.settings.max_wait_seconds:g} s); last status {status}; "
                    + ("the job was cancelled" if cancelled else "cancelling the job failed"),
                    job_id=job_id,
                    status=status,
                )
            pause = min(self.settings.poll_interval_seconds, self.settings.max_wait_seconds - waited)
            if pause > 0:
                clock.sleep(pause)

    def _cancel(self, client: ClariStream, key: ExportKey, job_id: str, path: str) -> bool:
        try:
            response = self._call(client, key, job_id, "PATCH", path, json_body={"type": "CANCEL"})
        except ExportFailedError:
            return False
        response.close()
        return response.status_code < HTTPStatus.BAD_REQUEST

    @staticmethod
    def _call(
        client: ClariStream,
        key: ExportKey,
        job_id: str | None,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        download: bool = False,
    ) -> requests.Response:
        """One request; a request that still fails after every retry fails this export only."""
        try:
            return client.send(method, path, json_body=json_body, download=download)
        except RetriesExhaustedError as exc:
            raise ExportFailedError(key, str(exc), job_id=job_id) from None

    def _results(
        self, client: ClariStream, key: ExportKey, job_id: str, *, want_entries: bool
    ) -> Iterator[dict[str, Any]]:
        path = f"/export/jobs/{quote(job_id, safe='')}/results"
        with contextlib.ExitStack() as stack:
            response = self._call(client, key, job_id, "GET", path, download=True)
            stack.callback(response.close)
            if response.status_code >= HTTPStatus.BAD_REQUEST:
                raise ExportFailedError(key, f"fetching the results failed: {_vendor_error(response)}", job_id=job_id)
            spool = stack.enter_context(tempfile.TemporaryFile(prefix="tap-clari-"))
            size = 0
            try:
                for chunk in response.iter_content(_DOWNLOAD_CHUNK):
                    spool.write(chunk)
                    size += len(chunk)
            except requests.RequestException as exc:
                raise ExportFailedError(
                    key, f"the results download broke off ({type(exc).__name__})", job_id=job_id
                ) from None
            if size == 0:
                raise ExportFailedError(key, "the results document is empty, not JSON", job_id=job_id)
            spool.flush()
            mapped = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)
            stack.callback(_close_map, mapped)
            try:
                document = _DOCUMENT_DECODER.decode(mapped)
            except msgspec.ValidationError as exc:
                raise ExportFailedError(
                    key, f"the results document does not have Clari's shape ({exc})", job_id=job_id
                ) from None
            except msgspec.DecodeError:
                raise ExportFailedError(key, "the results document is not JSON", job_id=job_id) from None
            if all(
                part is None
                for part in (
                    document.entries,
                    document.users,
                    document.fields,
                    document.timePeriods,
                    document.timeFrames,
                )
            ):
                raise ExportFailedError(
                    key,
                    "the results document has none of entries, users, fields, timePeriods, timeFrames",
                    job_id=job_id,
                )
            entries = document.entries or []
            problem = _period_problem(key, document, entries)
            if problem is not None:
                raise ExportFailedError(key, problem, job_id=job_id)
            self.lookups[key] = Lookups(
                users=document.users or [],
                fields=document.fields or [],
                time_periods=document.timePeriods or [],
                time_frames=document.timeFrames or [],
            )
            del document
            client.logger.info("Clari export %s, job '%s': %d entries, %d bytes", key, job_id, len(entries), size)
            if want_entries:
                decode = ENTRY_DECODER.decode
                for index in range(len(entries)):
                    entry = decode(entries[index])
                    if isinstance(entry, dict):
                        yield entry


def _close_map(mapped: mmap.mmap) -> None:
    """Close the map; if raw entries still point into it (an abandoned sync), the last of them unmaps it."""
    with contextlib.suppress(BufferError):
        mapped.close()


def _period_problem(key: ExportKey, document: _ResultsDocument, entries: list[msgspec.Raw]) -> str | None:
    """Clari answers an unknown period with the current quarter: compare before emitting anything."""
    returned: Any = None
    if document.timePeriods:
        first = document.timePeriods[0]
        returned = first.get("timePeriodId") if isinstance(first, dict) else None
    if returned is not None and str(returned) != key.period:
        return f"asked for period '{key.period}' but Clari returned '{returned}'; nothing emitted"
    decode = _ENTRY_PERIOD_DECODER.decode
    for index in range(len(entries)):
        try:
            period = decode(entries[index]).timePeriodId
        except msgspec.MsgspecError:
            return "an entry of the results document is not an object; nothing emitted"
        if period is not None and str(period) != key.period:
            return f"asked for period '{key.period}' but the entries are of period '{period}'; nothing emitted"
    return None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
