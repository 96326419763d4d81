"""Base streams for the Thought Industries "incoming" REST API (``<tenant>/incoming/v2``).

Two families of endpoints exist. Resource endpoints (users, content ...) page with an opaque
``pageInfo.cursor``. Event endpoints are read by time: the tap cuts the range from the bookmark to
``end_date`` into fixed windows and reads each window completely before it moves the bookmark to the
window's end. Inside a window the API answers newest first; it pages with ``pageInfo.cursor`` when
the response carries ``pageInfo``, else the tap walks ``endDate`` back past the oldest event seen
(what GitLab's production extractor does). Generic behaviour (retries, pacing, auth errors,
pseudonymization) comes from ``harborline_singer_shared``; only what is specific to this API is here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator

from harborline_singer_shared.auth import BearerAuth, bearer_auth_from_config
from harborline_singer_shared.dates import parse_datetime
from harborline_singer_shared.http import HarborlineRESTStream
from harborline_singer_shared.output import AllSelectedFastPathMixin
from harborline_singer_shared.pagination import (
    CursorPaginator,
    DateWindow,
    PaginationError,
    iter_date_windows,
)
from harborline_singer_shared.progress import Progress
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import requests
    from singer_sdk.helpers.types import Context, Record

API_PATH = "/incoming/v2"
EPOCH_MS = "epoch_ms"
ISO8601 = "iso8601"
#: The vendor's documented page size; only used to word a warning, never to stop paging.
VENDOR_PAGE_SIZE = 100
_PAGE_ATTR = "_thoughtindustries_page"
_ONE_MS = timedelta(milliseconds=1)


def to_epoch_ms(value: datetime) -> int:
    """Return integer epoch milliseconds of a timezone-aware datetime (exact, no float error)."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // _ONE_MS


def from_epoch_ms(value: int) -> datetime:
    """Return the UTC datetime of integer epoch milliseconds."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def parse_timestamp_ms(value: Any) -> int | None:
    """Return epoch ms of an event ``timestamp`` (ISO 8601 text, or a number of ms), else None.

    The vendor writes ``2023-02-10T16:44:45.084Z``; Python 3.10's ``fromisoformat`` does not accept
    the ``Z``, so it is replaced first. Naive values are taken as UTC.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    parsed = parse_datetime(value)
    if parsed is None:
        return None
    return to_epoch_ms(parsed)


def format_date_param(value_ms: int, date_format: str) -> str:
    """Render a ``startDate``/``endDate`` value in the configured format.

    ``epoch_ms`` is what production clients send; ``iso8601`` (with milliseconds and ``Z``) is what
    the vendor documents.
    """
    if date_format == ISO8601:
        dt = from_epoch_ms(value_ms)
        return f"{dt:%Y-%m-%dT%H:%M:%S}.{value_ms % 1000:03d}Z"
    return str(value_ms)


@dataclass
class EventPage:
    """One parsed event response: the events, its pagination data and the walk-back boundary."""

    events: list[dict[str, Any]]
    has_page_info: bool
    has_more: bool
    cursor: str | None
    #: Timestamp (epoch ms) of the oldest event on the page, None when the page is empty.
    oldest_ms: int | None = None
    #: Identities of the page's events at ``oldest_ms``; see :class:`WalkBack`.
    oldest_identities: frozenset[str] = frozenset()
    #: Epoch ms of each event's ``timestamp`` (None where unreadable), parallel to ``events``.
    stamps: list[int | None] = field(default_factory=list)


def read_event_page(response: requests.Response) -> EventPage:
    """Parse an event response once (cached on the response), accepting both envelopes.

    The vendor documents ``{"data": {"APIEvents": {"pageInfo": ..., "events": [...]}}}``; GitLab's
    production code reads a top-level ``events`` (and ``pageInfo`` where present).

    Raises:
        PaginationError: The body has neither shape, so reading on would silently lose data.
    """
    cached = getattr(response, _PAGE_ATTR, None)
    if isinstance(cached, EventPage):
        return cached
    body = response.json()
    container: Any = body
    if isinstance(body, dict) and "events" not in body and isinstance(body.get("data"), dict):
        container = body["data"].get("APIEvents")
    if not isinstance(container, dict) or not isinstance(container.get("events"), list):
        raise PaginationError(
            "Unexpected Thought Industries response: expected `events` at the top level or under `data.APIEvents`."
        )
    events: list[dict[str, Any]] = container.get("events") or []
    page_info = container.get("pageInfo")
    has_page_info = isinstance(page_info, dict)
    raw_cursor = page_info.get("cursor") if isinstance(page_info, dict) else None
    cursor = str(raw_cursor) if raw_cursor not in (None, "") else None
    # Without pageInfo the tap walks endDate back until an empty page. With pageInfo but no
    # `hasMore`, a cursor means "go on"; the next empty page ends the window.
    has_more = True
    if isinstance(page_info, dict):
        has_more = bool(page_info["hasMore"]) if "hasMore" in page_info else cursor is not None
    page = EventPage(
        events=events,
        has_page_info=has_page_info,
        has_more=has_more,
        cursor=cursor,
    )
    stamps = [parse_timestamp_ms(event.get("timestamp")) for event in events]
    page.stamps = stamps
    known = [ms for ms in stamps if ms is not None]
    if known:
        oldest = min(known)
        page.oldest_ms = oldest
        page.oldest_identities = frozenset(
            event_identity(event) for event, ms in zip(events, stamps, strict=True) if ms == oldest
        )
    setattr(response, _PAGE_ATTR, page)
    return page


def event_identity(event: dict[str, Any]) -> str:
    """Identity of a raw event for de-duplicating the walk-back overlap: its canonical JSON."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class EventPageToken:
    """Where the next request of a window starts: an inclusive ``endDate`` and/or a cursor."""

    end_ms: int
    cursor: str | None = None


@dataclass
class WalkBack:
    """Walk-back state of one window.

    The API has no tie-breaker below one millisecond, so moving ``endDate`` to "oldest minus 1 ms"
    (GitLab's rule) drops the events that share the oldest millisecond but did not fit on the page.
    Instead the next request ends *at* the oldest millisecond, and the events already read at that
    millisecond (kept here) are skipped. Only when a page brings nothing new does ``endDate`` move
    1 ms further back.
    """

    boundary_ms: int | None = None
    seen: set[str] = field(default_factory=set)


class EventPaginator(BaseAPIPaginator[EventPageToken | None]):
    """Pages through one window: by cursor when the page has ``pageInfo``, else by walking back."""

    def __init__(self, stream: EventStream, window: DateWindow) -> None:
        super().__init__(None)
        self._stream = stream
        self._window = window
        self._start_ms = to_epoch_ms(window.start)
        self.first_end_ms = to_epoch_ms(window.end) - 1  # the API's endDate is inclusive
        self.walk = WalkBack()
        self._cursors: set[str] = set()

    @property
    def current_end_ms(self) -> int:
        """The inclusive ``endDate`` of the request being made."""
        token = self.current_value
        return self.first_end_ms if token is None else token.end_ms

    def continue_if_empty(self, response: requests.Response) -> bool:
        """Go on after a page whose events all fell outside the window or were already read."""
        page = read_event_page(response)
        return bool(page.events) and self.has_more(response)

    def has_more(self, response: requests.Response) -> bool:
        """An empty page ends the window; so does ``pageInfo.hasMore`` false when present."""
        page = read_event_page(response)
        return bool(page.events) and page.has_more

    def get_next(self, response: requests.Response) -> EventPageToken | None:
        """Return the next token: the cursor, or the next (inclusive) ``endDate`` to walk back to.

        Raises:
            PaginationError: The API repeated a cursor or ignored ``endDate`` (no progress).
        """
        page = read_event_page(response)
        current_end = self.current_end_ms
        if page.has_page_info and page.cursor is not None:
            if page.cursor in self._cursors:
                raise PaginationError(
                    f"The API repeated a pagination cursor for {self._stream.name}; stopping to avoid an endless loop."
                )
            self._cursors.add(page.cursor)
            return EventPageToken(current_end, page.cursor)
        oldest = page.oldest_ms
        if oldest is None:
            raise PaginationError(f"{self._stream.name}: events without a readable `timestamp`; cannot walk back.")
        if oldest > current_end:
            raise PaginationError(
                f"{self._stream.name}: the API returned events newer than the requested endDate "
                f"({oldest} > {current_end}); check the `date_param_format` setting."
            )
        if oldest < current_end:
            self.walk.boundary_ms = oldest
            self.walk.seen = set(page.oldest_identities)
            return EventPageToken(oldest)
        # Every event on the page is at the requested end millisecond. A full page of them means
        # there may be more at that millisecond than the API can return.
        if len(page.events) >= VENDOR_PAGE_SIZE:
            self._stream.logger.warning(
                "%s: more than one page of events share the millisecond %s; the API cannot page "
                "inside one millisecond, so some of them may be missing.",
                self._stream.name,
                format_date_param(oldest, ISO8601),
            )
        self.walk.boundary_ms = None
        self.walk.seen = set()
        if oldest - 1 < self._start_ms:
            return None  # the window's first millisecond is read: done
        return EventPageToken(oldest - 1)


def build_shaper(schema: dict[str, Any]) -> Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]] | None:
    """Compile, once per schema, a function that drops properties the schema does not declare.

    The SDK's per-record type conformance walks every value of every record to convert Python
    datetimes, bytes and NaN, none of which a JSON response contains; it cost a third of the tap's
    time. What is still needed is dropping undeclared fields (so a vendor's new field never reaches
    the target unannounced). Records that already fit pass through untouched.

    Returns:
        None when the schema accepts any property; else a function returning the shaped record and
        the dotted names of the dropped properties.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict) or schema.get("additionalProperties"):
        return None
    allowed = frozenset(properties)
    nested = {
        name: shaper
        for name, sub in properties.items()
        if isinstance(sub, dict) and (shaper := build_shaper(sub)) is not None
    }

    def shape(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        dropped: list[str] = []
        if not allowed.issuperset(record):
            dropped = [name for name in record if name not in allowed]
            record = {k: v for k, v in record.items() if k in allowed}
        for name, shaper in nested.items():
            value = record.get(name)
            if isinstance(value, dict):
                shaped, sub_dropped = shaper(value)
                if sub_dropped:
                    record[name] = shaped
                    dropped.extend(f"{name}.{sub}" for sub in sub_dropped)
        return record, dropped

    return shape


class ThoughtIndustriesStream(AllSelectedFastPathMixin, PseudonymizedStreamMixin, HarborlineRESTStream):
    """Common base: URL, Bearer auth, the setting named on a 401, and fast record shaping."""

    auth_settings_hint: ClassVar[str] = "`api_key` and `api_url`"
    #: Values come straight from JSON, so the SDK's per-value conversion has nothing to convert;
    #: undeclared properties are dropped by :func:`build_shaper` in :meth:`post_process` instead.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Drop properties the schema does not declare (warning once per set), then pseudonymize."""
        shaper = self.__dict__.get("_ti_shaper", False)
        if shaper is False:
            shaper = build_shaper(dict(super().schema))
            self.__dict__["_ti_shaper"] = shaper
        if shaper is not None:
            row, dropped = shaper(row)
            if dropped:
                self._warn_dropped(tuple(dropped))
        return super().post_process(row, context)

    def _warn_dropped(self, names: tuple[str, ...]) -> None:
        warned: set[tuple[str, ...]] = self.__dict__.setdefault("_ti_warned", set())
        if names not in warned:
            warned.add(names)
            self.logger.warning("Properties %s are not in the '%s' schema and were dropped.", list(names), self.name)

    @property
    def url_base(self) -> str:
        """The tenant root from ``api_url`` plus ``/incoming/v2``."""
        root = str(self.config["api_url"]).rstrip("/")
        root = root.removesuffix(API_PATH)
        return root + API_PATH

    @property
    def authenticator(self) -> BearerAuth:
        """``Authorization: Bearer <api_key>``, built once per stream."""
        auth = self.__dict__.get("_ti_auth")
        if not isinstance(auth, BearerAuth):
            auth = bearer_auth_from_config(self.config, "api_key")
            self.__dict__["_ti_auth"] = auth
        return auth


class CursorStream(ThoughtIndustriesStream):
    """A resource endpoint (``GET /incoming/v2/<name>?cursor=``), read in full every run.

    GitLab persists the last cursor between runs, but a cursor is opaque and may expire, and these
    resources are small (thousands of rows); a full read with upsert on ``id`` is simpler and never
    misses an update to an old row.
    """

    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    replication_key = None
    #: Key of the results list in the response (``users``, ``contentItems`` ...).
    results_key: ClassVar[str]

    def get_new_paginator(self) -> CursorPaginator:
        """Follow ``pageInfo.cursor`` while ``pageInfo.hasMore`` is true."""
        return CursorPaginator("pageInfo.cursor", has_more_path="pageInfo.hasMore")

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:  # noqa: ARG002
        """Only the cursor: these endpoints take no filters the tap needs."""
        return {"cursor": next_page_token} if next_page_token else {}

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """Yield the list under :attr:`results_key` (top level, or under ``data`` if wrapped)."""
        body = response.json()
        rows = body.get(self.results_key) if isinstance(body, dict) else None
        if rows is None and isinstance(body, dict) and isinstance(body.get("data"), dict):
            rows = body["data"].get(self.results_key)
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise PaginationError(f"Expected a list at `{self.results_key}` in the response.")
        yield from rows


class EventStream(ThoughtIndustriesStream):
    """An event endpoint (``GET /incoming/v2/events/<name>``), read in time windows.

    The bookmark is the end of the last window read completely. Records inside a window arrive
    newest first, so the SDK's per-record bookmark (which assumes ascending order) is switched off
    and the state is written once per completed window instead. An interrupted run therefore repeats
    at most one window, and re-reading a window yields the same rows (upsert makes it idempotent).
    """

    log_progress = False  # its own lines name the window as well (see get_records)

    replication_key = "timestamp"
    is_sorted = False
    #: Vendor endpoint name, e.g. ``courseCompletion``.
    event_name: ClassVar[str]
    #: For events without an ``id``: the fields (dotted paths) whose values make a stable key.
    key_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._paginator: EventPaginator | None = None
        self._window: DateWindow | None = None

    @property
    def path(self) -> str:  # type: ignore[override]
        """``/events/<event_name>``."""
        return f"/events/{self.event_name}"

    # -- windows and state --------------------------------------------------------------------------
    @property
    def end_date(self) -> datetime:
        """End of the range: ``end_date`` or the moment the tap started, never in the future.

        A bookmark in the future would skip every event that happens before that moment.
        """
        now: datetime = getattr(self._tap, "started_at", None) or datetime.now(UTC)
        raw = self.config.get("end_date")
        if not raw:
            return now
        end = self._parse_datetime(str(raw))
        return min(end, now)

    @property
    def window_size(self) -> timedelta:
        """Window length from ``window_days`` (default one day)."""
        return timedelta(days=float(self.config.get("window_days") or 1))

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read every window from the bookmark to :attr:`end_date`, saving state after each."""
        start = self.get_starting_timestamp(context)
        if start is None:  # start_date is required, but be explicit about what happens without
            msg = f"{self.name}: no bookmark and no `start_date`; set the `start_date` setting."
            raise ValueError(msg)
        windows = list(iter_date_windows(start, self.end_date, self.window_size))
        progress = Progress(self.logger)
        events = 0
        for number, window in enumerate(windows, 1):
            self._window = window
            for record in self.request_records(context):
                events += 1
                yield record
            # Every record of the window has been written by now (the SDK writes a record before
            # asking for the next one), so the window may be committed.
            self._commit_window(window, context)
            progress.step(
                "stream '%s': window %d of %d read (%s to %s), %d events so far",
                self.name,
                number,
                len(windows),
                window.start.isoformat(),
                window.end.isoformat(),
                events,
                final=number == len(windows),
            )
        self._window = None

    def _commit_window(self, window: DateWindow, context: Context | None) -> None:
        state = self.get_context_state(context)
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = window.end.isoformat()
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _increment_stream_state(
        self,
        latest_record: Record,
        *,
        context: Context | None = None,
    ) -> None:
        """Do nothing per record: the bookmark moves per completed window (see the class doc)."""

    # -- requests ---------------------------------------------------------------------------------------
    def get_new_paginator(self) -> EventPaginator:
        """A fresh paginator for the current window."""
        if self._window is None:
            raise RuntimeError("EventStream.request_records called outside a window")
        self._paginator = EventPaginator(self, self._window)
        return self._paginator

    def get_url_params(
        self,
        context: Context | None,  # noqa: ARG002
        next_page_token: EventPageToken | None,
    ) -> dict[str, Any]:
        """``startDate``/``endDate`` (inclusive) in the configured format, plus the cursor."""
        paginator = self._paginator
        if paginator is None or self._window is None:
            raise RuntimeError("EventStream.get_url_params called outside a window")
        date_format = str(self.config.get("date_param_format") or EPOCH_MS)
        end_ms = paginator.first_end_ms if next_page_token is None else next_page_token.end_ms
        params: dict[str, Any] = {
            "startDate": format_date_param(to_epoch_ms(self._window.start), date_format),
            "endDate": format_date_param(end_ms, date_format),
        }
        if next_page_token is not None and next_page_token.cursor:
            params["cursor"] = next_page_token.cursor
        return params

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """Yield the page's events inside the window, skipping walk-back overlap already read."""
        page = read_event_page(response)
        paginator = self._paginator
        window = self._window
        if paginator is None or window is None:
            raise RuntimeError("EventStream.parse_response called outside a window")
        start_ms = to_epoch_ms(window.start)
        end_ms = to_epoch_ms(window.end)
        walk = paginator.walk
        boundary = walk.boundary_ms
        for event, ms in zip(page.events, page.stamps, strict=True):
            if ms is None or not start_ms <= ms < end_ms:
                # Outside [start, end): another window's event (or an API ignoring the filter).
                continue
            if ms == boundary and event_identity(event) in walk.seen:
                continue
            yield event

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Add ``event_key`` to events that have no ``id``, then pseudonymize (in the base class).

        The key is built from the clear values, so it does not change when pseudonymization is
        switched on or its key rotates.
        """
        if self.key_fields:
            row["event_key"] = event_key(row, self.key_fields)
        return super().post_process(row, context)


def _dig(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def event_key(record: dict[str, Any], fields: tuple[str, ...]) -> str:
    """Deterministic key of an event without ``id``: SHA-256 of the listed fields' values.

    The timestamp is normalised to epoch ms so ``...45.084Z`` and ``...45.084+00:00`` agree.
    Values are joined with a unit separator, so ``("a", "bc")`` and ``("ab", "c")`` differ.
    """
    parts = []
    for path in fields:
        value = _dig(record, path)
        if path == "timestamp":
            ms = parse_timestamp_ms(value)
            value = ms if ms is not None else value
        parts.append("" if value is None else str(value))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
