"""Base stream for the ZenGRC REST API v2 (``https://<tenant>.api.zengrc.com/api/v2/<object>``).

Every object type is listed the same way: ``GET /api/v2/<object>`` answers
``{"data": [...], "links": {"next": {"href": "/api/v2/<object>?..."}}}``, the next link being a
host-relative path that is absent or null on the last page. No server-side "updated since" filter
is known, so each sync reads every page and emits only the records whose ``updated_at`` is at or
after the bookmark. Retrying, timeouts, auth errors and pseudonymization come from
``harborline_singer_shared``; only what is specific to ZenGRC lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from harborline_singer_shared.auth import BasicAuth, basic_auth_from_config
from harborline_singer_shared.dates import parse_datetime
from harborline_singer_shared.http import HarborlineRESTStream
from harborline_singer_shared.pagination import BodyNextLinkPaginator
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context, Record

API_PREFIX = "/api/v2"
NEXT_LINK_PATH = "links.next.href"
REPLICATION_KEY = "updated_at"
#: Fixed-width UTC text for the replication key: the SDK compares bookmark values as strings, so
#: ``...05Z`` against ``...05.120Z`` would order wrongly ('Z' sorts after '.'); with a fixed width
#: string order is time order.
CANONICAL_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
DEFAULT_PAGE_SIZE_PARAMETER = "page_size"


def normalize_api_url(api_url: str) -> str:
    """Return the API base URL ending in ``/api/v2`` without a trailing slash.

    Users paste either the tenant host (``https://acme.api.zengrc.com``, as the vendor's own
    examples do) or the full base (``.../api/v2``, as GitLab's config does); both must work.
    """
    base = api_url.strip().rstrip("/")
    if not urlsplit(base).path.endswith(API_PREFIX):
        base += API_PREFIX
    return base


def canonical_datetime(value: datetime) -> str:
    """Return the fixed-width UTC text used for the replication key and bookmarks."""
    return value.astimezone(UTC).strftime(CANONICAL_FORMAT)


class ZenGRCStream(PseudonymizedStreamMixin, HarborlineRESTStream):
    """One ZenGRC object type, read in full and filtered client-side on ``updated_at``."""

    records_jsonpath = "$.data[*]"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = REPLICATION_KEY
    #: The API's order is not documented (probably by id), so the bookmark is only committed when
    #: a stream finished; an interrupted sync re-reads from the previous bookmark and loses nothing.
    is_sorted = False
    auth_settings_hint = "`username` and `password` (the ZenGRC API key id and secret)"

    #: Start of the client-side filter for the current sync, set in :meth:`get_records`.
    _filter_start: datetime | None = None

    @property
    def url_base(self) -> str:
        """The tenant's API base, e.g. ``https://acme.api.zengrc.com/api/v2``."""
        return normalize_api_url(str(self.config["api_url"]))

    @property
    def authenticator(self) -> BasicAuth:
        """HTTP basic auth with the API key id as user name and the key secret as password."""
        return basic_auth_from_config(self.config, "username", "password")

    def get_new_paginator(self) -> BodyNextLinkPaginator:
        """Follow ``links.next.href``, a path relative to the API host."""
        return BodyNextLinkPaginator(NEXT_LINK_PATH, base_url=self.url_base)

    def get_url_params(
        self,
        context: Context | None,  # noqa: ARG002 - one endpoint per stream, no partitions
        next_page_token: Any,  # noqa: ARG002 - next links carry their own query
    ) -> dict[str, Any]:
        """Send the page size when configured; the next link carries everything else."""
        params: dict[str, Any] = {}
        page_size = self.config.get("page_size")
        if page_size:
            name = self.config.get("page_size_parameter") or DEFAULT_PAGE_SIZE_PARAMETER
            params[str(name)] = int(page_size)
        return params

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read every page; remember where the client-side ``updated_at`` filter starts."""
        start = self.get_starting_timestamp(context)
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._filter_start = start
        if start is not None:
            self.logger.info(
                "ZenGRC has no updated-since filter: reading all pages of %s and emitting records "
                "with updated_at >= %s",
                self.name,
                canonical_datetime(start),
            )
        yield from super().get_records(context)

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Drop records older than the bookmark (keeping equal ones), then pseudonymize.

        Records without a parseable ``updated_at`` are always emitted: dropping them would lose
        data, emitting them again only costs an upsert.
        """
        updated = parse_datetime(row.get(REPLICATION_KEY))
        if updated is not None:
            row[REPLICATION_KEY] = canonical_datetime(updated)
            start = self._filter_start
            if start is not None and updated < start:
                return None
        return super().post_process(row, context)
