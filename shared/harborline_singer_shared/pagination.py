# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Paginators and date windows for the Harborline taps, built on ``singer_sdk.pagination``.

The SDK's base classes drive the page loop (``advance``/``has_more``/``get_next``); what the vendor
APIs need on top is reading tokens at a nested path, resolving host-relative next links, stopping
on short pages, and refusing to loop forever when an API repeats a cursor. An API can also loop
with a *new* cursor every time (it ignores the page parameter and answers the same page): the
:class:`PageGuard` that ``HarborlineRESTStream`` runs over every request chain stops on a page that
repeats the previous one, and after ``max_pages`` pages in any case. Incremental syncs over long
periods also need fixed-size date windows, which live here because they are pagination in time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import ParseResult, parse_qsl, urljoin, urlparse

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.jsonpath import extract_jsonpath
from singer_sdk.pagination import BaseAPIPaginator, BaseHATEOASPaginator, PageNumberPaginator

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests
    from singer_sdk.streams.rest import HTTPRequest

__all__ = [
    "DEFAULT_MAX_PAGES",
    "MAX_PAGES_SETTING",
    "BodyNextLinkPaginator",
    "CountedPageNumberPaginator",
    "CursorPaginator",
    "DateWindow",
    "PageGuard",
    "PaginationError",
    "RepeatedCursorError",
    "RepeatedPageError",
    "TooManyPagesError",
    "apply_next_link",
    "count_at_path",
    "iter_date_windows",
    "page_fingerprint",
    "value_at_path",
]

_MISSING = object()

#: Pages one request chain may take. Generous on purpose (at 100 records a page, ten million
#: records in one stream, partition or window): it exists to end a loop, not to limit real data.
DEFAULT_MAX_PAGES = 100_000

MAX_PAGES_SETTING = th.Property(
    "max_pages",
    th.IntegerType(minimum=1),
    default=DEFAULT_MAX_PAGES,
    description=(
        "Most pages read in one request chain (one stream, partition or date window) before the "
        "sync stops with an error naming the stream: a guard against an API that keeps returning "
        "a next page. Raise it if a stream really has more pages. A page whose records repeat the "
        "previous page's stops the sync at once, whatever this is."
    ),
)


class PaginationError(FatalAPIError):
    """The API's pagination data cannot be followed safely; the sync must stop, not guess."""


class RepeatedCursorError(PaginationError):
    """The API returned a cursor it had already returned: following it would loop forever."""


class RepeatedPageError(PaginationError):
    """A page held the same records as the previous page: the API ignores the page parameter."""


class TooManyPagesError(PaginationError):
    """A request chain reached ``max_pages`` pages and the API still offered another one."""


def page_fingerprint(records: list[Any]) -> tuple[int, str, str, str] | None:
    """A cheap fingerprint of one page's records, None for an empty page.

    The count plus the text of the first, middle and last records: two consecutive pages of a real
    API never agree on all four, while an API that ignores the page parameter repeats them exactly.
    Rendering three records instead of the whole page keeps the cost per page in microseconds.
    """
    if not records:
        return None
    return (len(records), repr(records[0]), repr(records[len(records) // 2]), repr(records[-1]))


class PageGuard:
    """Bounds one request chain (the pages of one stream, partition or window).

    Call :meth:`before_request` before each request and :meth:`check_page` with each page's
    records before they are emitted, so a repeated page is never written.
    """

    __slots__ = ("_previous", "max_pages", "pages", "stream_name")

    def __init__(self, stream_name: str, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.stream_name = stream_name
        self.max_pages = max_pages
        #: Pages received so far in this chain, empty ones included.
        self.pages = 0
        self._previous: tuple[int, str, str, str] | None = None

    def before_request(self) -> None:
        """Refuse the request for page ``max_pages + 1``.

        Raises:
            TooManyPagesError: ``max_pages`` pages were read and the API offers more.
        """
        if self.pages >= self.max_pages:
            raise TooManyPagesError(
                f"stream '{self.stream_name}': stopped after max_pages ({self.max_pages}) pages in one "
                "request chain and the API still offers a next page; raise the `max_pages` setting if "
                "this stream really has more pages."
            )

    def check_page(self, records: list[Any]) -> None:
        """Count a page and refuse it when its records repeat the previous page's.

        An empty page is never a repeat (and the page after it is compared with nothing): APIs
        legitimately answer empty pages while they advance.

        Raises:
            RepeatedPageError: The page repeats the previous one.
        """
        self.pages += 1
        fingerprint = page_fingerprint(records)
        if fingerprint is not None and fingerprint == self._previous:
            raise RepeatedPageError(
                f"stream '{self.stream_name}': page {self.pages} has the same {len(records)} record(s) as "
                f"page {self.pages - 1} although the API offered it as a new page; the API seems to ignore "
                "the page parameter. Stopping to avoid an endless loop of duplicates."
            )
        self._previous = fingerprint


def _walk_dotted(data: Any, path: str) -> Any:
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def value_at_path(data: Any, path: str) -> Any:
    """Return the value at a dotted path (``links.next.href``) or JSONPath (``$.a.b``), else None.

    Dotted paths cover almost every API; JSONPath (anything starting with ``$``) is accepted so a
    tap can reuse an expression it already has. Numeric parts index lists (``items.0.id``).
    """
    if path.startswith("$"):
        return next(extract_jsonpath(path, data), None)
    value = _walk_dotted(data, path)
    return None if value is _MISSING else value


def count_at_path(data: Any, path: str) -> int:
    """Count the records a page holds, to detect the last (short) page.

    A JSONPath (``$.data[*]``, the same expression a stream uses as ``records_jsonpath``) counts
    its matches; a dotted path (``data``) must lead to a list, whose length is returned. Anything
    missing counts as zero records.
    """
    if path.startswith("$"):
        return sum(1 for _ in extract_jsonpath(path, data))
    value = _walk_dotted(data, path)
    if value is _MISSING or value is None:
        return 0
    if not isinstance(value, list):
        raise PaginationError(f"Expected a list of records at `{path}` to count the page, got {type(value).__name__}")
    return len(value)


def _origin(url: str) -> tuple[str, str]:
    parts = urlparse(url)
    return (parts.scheme.lower(), parts.netloc.lower())


class BodyNextLinkPaginator(BaseHATEOASPaginator):
    """Follows a next-page link found in the JSON body, e.g. at ``links.next.href``.

    Links may be absolute or relative (``/api/v2/x?page=2``); relative ones are resolved against
    ``base_url`` (the API's base URL, or the response URL when not given). Pagination ends when the
    link is absent, null or empty. A link to another host is refused by default, because the
    stream's credentials would be sent to it.

    The token (``current_value``) is a parsed URL. ``HarborlineRESTStream`` follows it
    automatically; other streams can call :func:`apply_next_link` in ``get_http_request``.
    """

    def __init__(self, path: str, *, base_url: str | None = None, allow_other_hosts: bool = False) -> None:
        super().__init__()
        self._path = path
        self._base_url = base_url
        self._allow_other_hosts = allow_other_hosts
        self._seen: set[str] = set()

    def get_next_url(self, response: requests.Response) -> str | None:
        """Return the absolute next-page URL, or None when there is no next page.

        Raises:
            PaginationError: The link is not a string, or points to another host.
            RepeatedCursorError: The link was already followed.
        """
        link = value_at_path(response.json(), self._path)
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise PaginationError(f"Expected a URL string at `{self._path}`, got {type(link).__name__}")
        link = link.strip()
        if not link:
            return None
        base = self._base_url or response.url
        absolute = urljoin(base, link)
        if not self._allow_other_hosts and _origin(absolute) != _origin(base):
            host = urlparse(absolute).netloc
            raise PaginationError(
                f"The next-page link at `{self._path}` points to another host ({host}); refusing "
                "to send credentials there. Pass allow_other_hosts=True if this is expected."
            )
        if absolute in self._seen:
            raise RepeatedCursorError(
                f"The API returned the same next-page link at `{self._path}` a second time "
                f"(after {self.count} pages); stopping to avoid an infinite pagination loop."
            )
        self._seen.add(absolute)
        return absolute


def apply_next_link(request: HTTPRequest, token: ParseResult | None) -> HTTPRequest:
    """Point ``request`` at a next-page link, keeping only parameters the link does not carry.

    Next links normally carry the whole query (page, filters); parameters the stream would add
    again must be dropped or the API sees them twice. Parameters the link lacks (often
    ``page_size``) are kept.
    """
    if token is None:
        return request
    link_params = {key for key, _ in parse_qsl(token.query, keep_blank_values=True)}
    request.url = token.geturl()
    request.params = {k: v for k, v in request.params.items() if k not in link_params}
    return request


class CursorPaginator(BaseAPIPaginator[str | None]):
    """Follows an opaque cursor at a dotted path, e.g. ``pageInfo.cursor``.

    Stops when the cursor is missing, null or empty, or when the optional ``has_more_path``
    (e.g. ``pageInfo.hasMore``) holds a false value; an absent has-more field leaves the decision
    to the cursor. Any cursor seen before, not only the previous one, raises
    :class:`RepeatedCursorError`: a cycle of two pages would otherwise loop forever.
    """

    def __init__(self, cursor_path: str, *, has_more_path: str | None = None) -> None:
        super().__init__(None)
        self._cursor_path = cursor_path
        self._has_more_path = has_more_path
        self._seen: set[str] = set()

    def has_more(self, response: requests.Response) -> bool:
        """Return False only when the API says explicitly that this was the last page."""
        if self._has_more_path is None:
            return True
        flag = value_at_path(response.json(), self._has_more_path)
        if flag is None:
            return True
        if isinstance(flag, str):
            return flag.strip().lower() not in {"false", "0", "no", ""}
        return bool(flag)

    def get_next(self, response: requests.Response) -> str | None:
        """Return the next cursor as a string, or None at the end.

        Raises:
            RepeatedCursorError: The cursor was already returned by an earlier page.
            PaginationError: The cursor is not a string or number.
        """
        cursor = value_at_path(response.json(), self._cursor_path)
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, (str, int)):
            raise PaginationError(f"Expected a string cursor at `{self._cursor_path}`, got {type(cursor).__name__}")
        token = str(cursor)
        if token in self._seen:
            raise RepeatedCursorError(
                f"The API returned the cursor at `{self._cursor_path}` a second time (after "
                f"{self.count} pages); stopping to avoid an infinite pagination loop."
            )
        self._seen.add(token)
        return token


class CountedPageNumberPaginator(PageNumberPaginator):
    """Page-number pagination that stops on a short or empty page.

    APIs without a total or next link signal the end by returning fewer than ``page_size``
    records; stopping there saves the extra request for an empty page.
    """

    def __init__(self, *, page_size: int, records_path: str, start_page: int = 1) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        super().__init__(start_page)
        self._page_size = page_size
        self._records_path = records_path

    @property
    def page_size(self) -> int:
        """Records the API returns on a full page (send it as the page-size parameter)."""
        return self._page_size

    def has_more(self, response: requests.Response) -> bool:
        """Return True only after a full page."""
        return count_at_path(response.json(), self._records_path) >= self._page_size


class DateWindow(NamedTuple):
    """A half-open time window ``[start, end)``; a tuple, so it unpacks as ``(start, end)``."""

    start: datetime
    end: datetime

    def to_params(self, start_param: str, end_param: str, *, date_format: str | None = None) -> dict[str, str]:
        """Return query parameters for the window, ISO 8601 unless ``date_format`` is given."""

        def fmt(value: datetime) -> str:
            return value.strftime(date_format) if date_format else value.isoformat()

        return {start_param: fmt(self.start), end_param: fmt(self.end)}


def iter_date_windows(start: datetime, end: datetime, size: timedelta) -> Iterator[DateWindow]:
    """Yield consecutive half-open windows ``[start, end)`` of ``size``; the last is truncated.

    Windows are computed in UTC (absolute time), so a day-sized window is 24 hours even across a
    daylight-saving change, and they are returned as UTC datetimes. Nothing is yielded when
    ``start >= end``.

    Args:
        start: First instant covered (timezone-aware).
        end: First instant not covered (timezone-aware).
        size: Window length; must be positive.

    Yields:
        :class:`DateWindow` tuples, each window's end being the next one's start.

    Raises:
        ValueError: A naive datetime or a non-positive size.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("iter_date_windows needs a timezone-aware start datetime")
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("iter_date_windows needs a timezone-aware end datetime")
    if size <= timedelta(0):
        raise ValueError("iter_date_windows needs a positive window size")
    current = start.astimezone(UTC)
    stop = end.astimezone(UTC)
    while current < stop:
        window_end = min(current + size, stop)
        yield DateWindow(current, window_end)
        current = window_end
