"""The tap-clari entry point: settings, start-up checks, the exports of a run and how failures are reported."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from harborline_singer_shared.output import BufferedMsgSpecWriter
from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import pseudonymization_settings
from harborline_singer_shared.retry import RETRY_SETTINGS
from harborline_tap_clari.client import (
    DEFAULT_API_URL,
    DEFAULT_TYPES_TO_EXPORT,
    ExportKey,
    ExportRunner,
    ExportSettings,
)
from harborline_tap_clari.periods import NAMED_BY_END, NAMED_BY_START, FiscalCalendar, parse_period
from harborline_tap_clari.streams import PERSONAL_DATA_FIELDS, STREAM_TYPES, ForecastEntriesStream

if TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum
    from singer_sdk.streams import Stream

    from harborline_tap_clari.client import ClariStream

DEFAULT_POLL_INTERVAL_SECONDS = 15
DEFAULT_MAX_WAIT_SECONDS = 1800
DEFAULT_QUARTERS_BACK = 1
_MONTHS = 12


class ExportsFailedError(FatalAPIError):
    """Some exports failed; every other one was emitted. Raised after the whole run."""


class TapClari(HarborlinePluginMixin, Tap):
    """Singer tap for Clari forecast exports."""

    name = "tap-clari"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-tap-clari"
    #: Pseudonymized unless the config says otherwise (`pseudonymize: {}` opts out): private by default.
    personal_data_fields = PERSONAL_DATA_FIELDS
    message_writer_class = BufferedMsgSpecWriter
    #: No ACTIVATE_VERSION: a run exports only the look-back, so a version switch would delete older quarters' rows.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property(
            "api_url",
            th.StringType(pattern=r"^https?://"),
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of Clari's API.",
        ),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API key",
            description="Clari API token (Settings > API Token), sent as the `apikey` header.",
        ),
        th.Property(
            "forecast_ids",
            th.ArrayType(th.StringType),
            required=True,
            title="Forecast Tab ids",
            description=(
                "The Forecast Tabs to export, by the id in the Clari URL (app.clari.com/forecast/<id>), "
                'e.g. ["net_bookings"].'
            ),
        ),
        th.Property(
            "time_periods",
            th.ArrayType(th.StringType),
            description=(
                "Fiscal quarters (YYYY_QN) to export. When set, exactly these are exported and quarters_back is "
                "ignored."
            ),
        ),
        th.Property(
            "quarters_back",
            th.IntegerType,
            default=DEFAULT_QUARTERS_BACK,
            description=(
                "How many quarters before the current fiscal quarter every run re-exports (0: the current one only)."
            ),
        ),
        th.Property(
            "fiscal_year_start_month",
            th.IntegerType,
            default=1,
            description="Month (1-12) in which your fiscal year starts.",
        ),
        th.Property(
            "fiscal_year_named_by",
            th.StringType(allowed_values=[NAMED_BY_END, NAMED_BY_START]),
            default=NAMED_BY_END,
            description=(
                'Whether "FY2026" is the fiscal year that ends in 2026 (end) or the one that starts in 2026 (start).'
            ),
        ),
        th.Property(
            "include_historical",
            th.BooleanType,
            default=True,
            description="Ask Clari for every week of the quarter, not only the latest (includeHistorical).",
        ),
        th.Property(
            "types_to_export",
            th.ArrayType(th.StringType),
            default=list(DEFAULT_TYPES_TO_EXPORT),
            description=(
                "Clari's typesToExport: forecast, quota, forecast_updated, adjustment (default), also crm_total and "
                "crm_closed. Values without a column of their own land in forecast_entries.extra."
            ),
        ),
        th.Property("currency", th.StringType, description="ISO 4217 currency to convert values to (passed through)."),
        th.Property(
            "scope_id", th.StringType, description="Hierarchy scope to restrict the export to (passed through)."
        ),
        th.Property(
            "poll_interval_seconds",
            th.NumberType,
            default=DEFAULT_POLL_INTERVAL_SECONDS,
            description="Seconds between two status checks of an export job (0 or more).",
        ),
        th.Property(
            "max_wait_seconds",
            th.NumberType,
            default=DEFAULT_MAX_WAIT_SECONDS,
            description=(
                "Longest wait for one export job to be DONE; then it is cancelled and reported as failed "
                "(the other exports go on)."
            ),
        ),
        # max_pages guards paginated streams; an export is one document, so the setting would do nothing here.
        *(setting for setting in RETRY_SETTINGS if setting.name != "max_pages"),
        *pseudonymization_settings(PERSONAL_DATA_FIELDS),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._export_runner: ExportRunner | None = None
        super().__init__(*args, **kwargs)

    # -- settings -----------------------------------------------------------------------------------------------

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check what JSON Schema cannot, naming the setting; then validate.

        The personal-data default of `pseudonymize`, its key and the streams and fields it names are checked by
        the shared plugin mixin at start-up, as in every tap.
        """
        self._numbers_from_text()
        errors = self._setting_errors()
        if errors:
            if raise_errors:
                raise ConfigValidationError(errors[0], errors=errors)
            for error in errors:
                self.logger.warning("%s", error)
        return errors + super()._validate_config(raise_errors=raise_errors)

    def _numbers_from_text(self) -> None:
        """Turn number settings given as text into numbers (the SDK's `--config ENV` parsing leaves them text)."""
        for name, prop in self.config_jsonschema["properties"].items():
            value = self._config.get(name)
            types = prop.get("type")
            if isinstance(value, str) and types is not None and "number" in types:
                with contextlib.suppress(ValueError):
                    self._config[name] = float(value)

    def _setting_errors(self) -> list[str]:
        config = self._config
        errors: list[str] = []
        forecast_ids = config.get("forecast_ids")
        if isinstance(forecast_ids, str):
            forecast_ids = [forecast_ids]
        if (
            not forecast_ids
            or not isinstance(forecast_ids, list)
            or not all(isinstance(f, str) and f.strip() for f in forecast_ids)
        ):
            errors.append(
                '`forecast_ids` is required: a list of Forecast Tab ids from the Clari URL, e.g. ["net_bookings"]'
            )
        periods = config.get("time_periods")
        if periods is not None:
            if not isinstance(periods, list):
                errors.append('`time_periods` must be a list of fiscal quarters like ["2025_Q3"]')
            else:
                for period in periods:
                    try:
                        parse_period(period)
                    except ValueError:
                        errors.append(
                            f"`time_periods` has {period!r}, which is not a fiscal quarter YYYY_QN (e.g. 2025_Q3)"
                        )
        month = config.get("fiscal_year_start_month", 1)
        if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= _MONTHS:
            errors.append(f"`fiscal_year_start_month` must be a month number 1-12, not {month!r}")
        named_by = config.get("fiscal_year_named_by", NAMED_BY_END)
        if named_by not in {NAMED_BY_END, NAMED_BY_START}:
            errors.append(f"`fiscal_year_named_by` must be 'end' or 'start', not {named_by!r}")
        back = config.get("quarters_back", DEFAULT_QUARTERS_BACK)
        if isinstance(back, bool) or not isinstance(back, int) or back < 0:
            errors.append(f"`quarters_back` must be a whole number 0 or more, not {back!r}")
        for name in ("poll_interval_seconds", "max_wait_seconds"):
            value = config.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                errors.append(f"`{name}` must be a number of seconds, 0 or more, not {value!r}")
        types = config.get("types_to_export")
        if types is not None and (not isinstance(types, list) or not types):
            errors.append('`types_to_export` must be a non-empty list, e.g. ["forecast", "quota"]')
        return errors

    # -- the run ------------------------------------------------------------------------------------------------

    def current_date(self) -> date:
        """Today in UTC: it decides the current fiscal quarter (tests replace it)."""
        return datetime.now(UTC).date()

    def export_keys(self) -> list[ExportKey]:
        """Every (forecast, quarter) this run exports: ``time_periods``, or the current quarter and the look-back."""
        config = self.config
        periods = config.get("time_periods")
        if periods:
            names = list(dict.fromkeys(str(p) for p in periods))
        else:
            calendar = FiscalCalendar(
                int(config.get("fiscal_year_start_month", 1)), str(config.get("fiscal_year_named_by", NAMED_BY_END))
            )
            quarters_back = int(config.get("quarters_back", DEFAULT_QUARTERS_BACK))
            names = [q.period_id for q in calendar.look_back(self.current_date(), quarters_back)]
        forecasts = config["forecast_ids"]
        forecasts = [forecasts] if isinstance(forecasts, str) else list(dict.fromkeys(str(f) for f in forecasts))
        return [ExportKey(forecast, period) for forecast in forecasts for period in names]

    def export_settings(self) -> ExportSettings:
        """What every export asks for, from the config."""
        config = self.config
        return ExportSettings(
            include_historical=bool(config.get("include_historical", True)),
            types_to_export=tuple(config.get("types_to_export") or DEFAULT_TYPES_TO_EXPORT),
            currency=config.get("currency") or None,
            scope_id=config.get("scope_id") or None,
            poll_interval_seconds=float(config.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL_SECONDS)),
            max_wait_seconds=float(config.get("max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)),
        )

    @property
    def export_runner(self) -> ExportRunner:
        """The exports of the current sync (created on first use, so "today" is the sync's day)."""
        if self._export_runner is None:
            keys = self.export_keys()
            self.logger.info("Exporting %d forecast(s) x period(s): %s", len(keys), ", ".join(map(str, keys)))
            self._export_runner = ExportRunner(keys, self.export_settings())
        return self._export_runner

    def discover_streams(self) -> list[ClariStream]:
        """The five streams, forecast_entries first (it runs the exports the others reuse)."""
        return [stream_class(tap=self) for stream_class in STREAM_TYPES]

    @property
    def streams(self) -> dict[str, Stream]:
        """The SDK's streams (ordered by name), with forecast_entries moved first.

        forecast_entries streams each export's entries and leaves the small arrays for the other four streams, so
        with it first every export runs once per sync. (The SDK's `load_streams` that sorts them is final.)
        """
        streams = super().streams
        first = ForecastEntriesStream.name
        if first in streams and next(iter(streams)) != first:
            ordered = {first: streams[first], **{k: v for k, v in streams.items() if k != first}}
            streams.clear()
            streams.update(ordered)
        return streams

    # The SDK marks sync_all final but has no hook after the last stream: this is the one place that knows the
    # whole run is over, so it is wrapped (the SDK's own loop runs unchanged inside).
    def sync_all(self) -> None:  # type: ignore[misc]
        """Run every export once, then fail with one line per failed export if any failed."""
        self._export_runner = None
        super().sync_all()
        runner = self._export_runner
        if runner is None or not runner.failures:
            return
        for failure in runner.failures.values():
            self.logger.error("%s", failure)
        raise ExportsFailedError(
            f"{len(runner.failures)} of {len(runner.keys)} Clari export(s) failed (listed above); "
            "every other export was emitted in full"
        )


if __name__ == "__main__":
    TapClari.cli()
