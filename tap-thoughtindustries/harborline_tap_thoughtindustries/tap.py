"""The Thought Industries tap: settings and the stream list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from singer_sdk import Tap
from singer_sdk import typing as th

from harborline_singer_shared.output import BufferedMsgSpecWriter
from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import pseudonymization_settings
from harborline_singer_shared.retry import RETRY_SETTINGS
from harborline_tap_thoughtindustries.client import EPOCH_MS, ISO8601
from harborline_tap_thoughtindustries.streams import CURSOR_STREAMS, EVENT_STREAMS, PERSONAL_DATA_FIELDS

if TYPE_CHECKING:
    from singer_sdk.streams import Stream

DEFAULT_REQUESTS_PER_MINUTE = 100


#: The text of a number above zero (e.g. "0.5", "7"), for settings Meltano passes as strings.
POSITIVE_NUMBER_TEXT = r"^\s*(?=[0-9.]*[1-9])[0-9]*\.?[0-9]+\s*$"


class TapThoughtIndustries(HarborlinePluginMixin, Tap):
    """Singer tap for the Thought Industries "incoming" REST API (events and resources)."""

    name = "tap-thoughtindustries"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-tap-thoughtindustries"
    #: Pseudonymized unless the config says otherwise (`pseudonymize: {}` opts out): private by default.
    personal_data_fields = PERSONAL_DATA_FIELDS
    message_writer_class = BufferedMsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url",
            th.URIType,
            required=True,
            title="Tenant URL",
            description=(
                "Root URL of your Thought Industries tenant, e.g. https://university.example.com "
                "(the tap adds /incoming/v2)."
            ),
        ),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API key",
            description="REST API key (Settings > Security), sent as a Bearer token.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            required=True,
            description="Read events from this instant on (used when there is no bookmark yet).",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description=(
                "Read events up to (not including) this instant. Default: the time the run "
                "starts; a later value is capped to it."
            ),
        ),
        th.Property(
            "window_days",
            # A number, or its text: Meltano carries a fractional setting from the environment only as a string
            # (its `decimal` kind crashes on an environment variable in Meltano 4.4).
            # (exclusiveMinimum applies to a number, pattern to text: JSON Schema keywords are per type).
            th.CustomType({"type": ["number", "string"], "exclusiveMinimum": 0, "pattern": POSITIVE_NUMBER_TEXT}),
            default=1,
            description=(
                "Size of the time windows events are read in, in days (fractions allowed, e.g. 0.5; a number or "
                "its text). The bookmark moves to the end of each completed window."
            ),
        ),
        th.Property(
            "requests_per_minute",
            th.NumberType(exclusive_minimum=0),
            default=DEFAULT_REQUESTS_PER_MINUTE,
            description=(
                "Client-side pacing over all streams, retries included. The vendor allows 100 "
                "event requests per minute (120 or 600 for other endpoints, by plan)."
            ),
        ),
        th.Property(
            "date_param_format",
            th.StringType(allowed_values=[EPOCH_MS, ISO8601]),
            default=EPOCH_MS,
            description=(
                "How startDate/endDate are sent: epoch_ms (what production clients send) or "
                "iso8601 (what the vendor documents)."
            ),
        ),
        *RETRY_SETTINGS,
        *pseudonymization_settings(PERSONAL_DATA_FIELDS),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: One "now" for every stream, so all event streams stop at the same instant.
        self.started_at = datetime.now(UTC)

    def discover_streams(self) -> list[Stream]:
        """Return one instance of every stream."""
        return [cls(tap=self) for cls in (*EVENT_STREAMS, *CURSOR_STREAMS)]


if __name__ == "__main__":
    TapThoughtIndustries.cli()
