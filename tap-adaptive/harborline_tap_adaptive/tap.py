"""The tap-adaptive entry point: settings, their start-up checks, the streams and the MNPI guard of a run."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import EMIT_ACTIVATE_VERSION_CONFIG, PluginCapabilities, TapCapabilities

from harborline_singer_shared.http import RATE_LIMIT_SETTINGS
from harborline_singer_shared.output import BufferedMsgSpecWriter
from harborline_singer_shared.plugin import STREAM_ATTR, HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import pseudonymization_settings
from harborline_singer_shared.retry import RETRY_SETTINGS
from harborline_tap_adaptive.client import DEFAULT_API_URL, DEFAULT_API_VERSION, DEFAULT_CALLER_NAME
from harborline_tap_adaptive.data import DataStream, MissingAllowListError
from harborline_tap_adaptive.sheets import ConfigurableModelDataStream, ModeledSheetsStream, SheetDefinitionsStream
from harborline_tap_adaptive.streams import (
    PERSONAL_DATA_FIELDS,
    AccountsStream,
    ActiveCurrenciesStream,
    AttributesStream,
    AttributeValuesStream,
    CustomerLogoStream,
    DimensionFamiliesStream,
    DimensionMappingStream,
    DimensionsStream,
    DimensionValuesStream,
    GroupsStream,
    InstancesStream,
    LevelsStream,
    LocalesStream,
    PermissionSetsStream,
    RolesStream,
    SecurityAuditStream,
    SheetsStream,
    TimePeriodsStream,
    TransactionDefinitionsStream,
    UsersStream,
    VersionsStream,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

    from harborline_tap_adaptive.client import AdaptiveStream

STREAM_TYPES: list[type[AdaptiveStream]] = [
    AccountsStream,
    ActiveCurrenciesStream,
    AttributesStream,
    AttributeValuesStream,
    ConfigurableModelDataStream,
    CustomerLogoStream,
    DataStream,
    DimensionFamiliesStream,
    DimensionMappingStream,
    DimensionsStream,
    DimensionValuesStream,
    GroupsStream,
    InstancesStream,
    LevelsStream,
    LocalesStream,
    ModeledSheetsStream,
    PermissionSetsStream,
    RolesStream,
    SecurityAuditStream,
    SheetDefinitionsStream,
    SheetsStream,
    TimePeriodsStream,
    TransactionDefinitionsStream,
    UsersStream,
    VersionsStream,
]
_MONTH_YEAR = re.compile(r"^(0[1-9]|1[0-2])/(\d{4})$")
_LIST_SETTINGS = (
    "version_names",
    "reexport_versions",
    "account_codes",
    "levels",
    "dimensions",
    "modeled_sheets",
)


class TapAdaptive(HarborlinePluginMixin, Tap):
    """Singer tap for Workday Adaptive Planning's XML API."""

    name = "tap-adaptive"
    #: The distribution, so `--about` and `--version` report its version.
    package_name = "harborline-tap-adaptive"
    #: Pseudonymized unless the config says otherwise (`pseudonymize: {}` opts out): private by default.
    personal_data_fields = PERSONAL_DATA_FIELDS
    message_writer_class = BufferedMsgSpecWriter
    #: ACTIVATE_VERSION for the metadata streams (full table every run); `data` never emits it (see DataStream).
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("username", th.StringType, required=True, description="Adaptive login (an API user's e-mail)."),
        th.Property(
            "password", th.StringType, required=True, secret=True, description="The login's password (sent in XML)."
        ),
        th.Property(
            "instance_code",
            th.StringType,
            description="Instance to use when the login reaches several (see the instances stream); unset: default.",
        ),
        th.Property(
            "api_url",
            th.StringType(pattern=r"^https?://"),
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of the XML API; calls go to {api_url}/v{api_version}.",
        ),
        th.Property(
            "api_version", th.IntegerType(minimum=1), default=DEFAULT_API_VERSION, description="XML API version."
        ),
        th.Property(
            "caller_name",
            th.StringType,
            default=DEFAULT_CALLER_NAME,
            description="callerName of every call (shows in Adaptive's audit).",
        ),
        th.Property(
            "version_folder",
            th.StringType,
            description=(
                "The data stream exports every version anywhere below the version folder of exactly this name "
                "(e.g. Shared with Data); folders themselves never."
            ),
        ),
        th.Property(
            "version_names",
            th.ArrayType(th.StringType),
            description="More versions the data stream exports, by exact name.",
        ),
        th.Property(
            "reexport_versions",
            th.ArrayType(th.StringType),
            description="Versions (names or ids) the data stream exports again although an earlier run did.",
        ),
        th.Property(
            "account_codes",
            th.ArrayType(th.StringType),
            description=(
                "The allow-list of the data stream: only these accounts' rows are exported (others hold MNPI and "
                "never leave). Required when data is selected."
            ),
        ),
        th.Property("levels", th.ArrayType(th.StringType), description="Level names to export data for (all below)."),
        th.Property(
            "include_rollup_levels",
            th.BooleanType,
            default=False,
            description="Also export rolled-up levels' values (includeRollupLevels).",
        ),
        th.Property(
            "dimensions",
            th.ArrayType(th.StringType),
            description="Dimension names to break data down by (one <dimension> each).",
        ),
        th.Property("time_span_start", th.StringType, description="First period of data to export, MM/YYYY."),
        th.Property("time_span_end", th.StringType, description="Last period of data to export, MM/YYYY."),
        th.Property(
            "modeled_sheets",
            th.ArrayType(th.StringType),
            description=(
                "Modeled sheets for the sheet streams (modeled_sheets, sheet_definitions, configurable_model_data)."
            ),
        ),
        *RETRY_SETTINGS,
        *RATE_LIMIT_SETTINGS,
        *pseudonymization_settings(PERSONAL_DATA_FIELDS),
    ).to_dict()
    # The SDK's own definition of the setting that turns ACTIVATE_VERSION on (it ships as a plain schema dict).
    config_jsonschema["properties"].update(EMIT_ACTIVATE_VERSION_CONFIG["properties"])

    # -- settings -----------------------------------------------------------------------------------------------

    # A private SDK method (singer-sdk 0.54.9), overridden as tap-clari does: it is where the SDK validates the
    # settings at start-up, and no public hook runs before the first request with the errors reported as one line.
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check what JSON Schema cannot, naming the setting; then validate (the SDK's own checks)."""
        self._lists_from_text()
        errors = self._setting_errors()
        if errors:
            if raise_errors:
                raise ConfigValidationError(errors[0], errors=errors)
            for error in errors:
                self.logger.warning("%s", error)
        return errors + super()._validate_config(raise_errors=raise_errors)

    def _lists_from_text(self) -> None:
        """A list setting given as one text (``TAP_ADAPTIVE_ACCOUNT_CODES=4000``) is a list of that one item."""
        for name in _LIST_SETTINGS:
            value = self._config.get(name)
            if isinstance(value, str):
                self._config[name] = [value]
        with contextlib.suppress(TypeError, ValueError):
            if isinstance(self._config.get("api_version"), str):
                self._config["api_version"] = int(self._config["api_version"])

    def _setting_errors(self) -> list[str]:
        config = self._config
        errors: list[str] = []
        spans = {}
        for name in ("time_span_start", "time_span_end"):
            value = config.get(name)
            if value in (None, ""):
                continue
            match = _MONTH_YEAR.match(str(value))
            if not match:
                errors.append(f"`{name}` must be a month as MM/YYYY (e.g. 01/2025), not {value!r}")
                continue
            spans[name] = (int(match.group(2)), int(match.group(1)))
        if len(spans) == 2 and spans["time_span_start"] > spans["time_span_end"]:
            errors.append("`time_span_start` is after `time_span_end`")
        for name in _LIST_SETTINGS:
            value = config.get(name)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                errors.append(f'`{name}` must be a list of non-empty names, e.g. ["A"], not {value!r}')
        folder = config.get("version_folder")
        if folder is not None and (not isinstance(folder, str) or not folder.strip()):
            errors.append("`version_folder` must be a folder name")
        return errors

    # -- the run ------------------------------------------------------------------------------------------------

    def discover_streams(self) -> list[AdaptiveStream]:
        """One stream per export method (dimensions and attributes also give their values' streams), and data."""
        return [stream_class(tap=self) for stream_class in STREAM_TYPES]

    # The SDK marks sync_all final and has no hook before the first stream: the MNPI guard must run before any call.
    def sync_all(self) -> None:  # type: ignore[misc]
        """Refuse to run data without the allow-list, before any request; then sync as the SDK does."""
        data = self.streams.get(DataStream.name)
        if data is not None and data.selected and not self.config.get("account_codes"):
            error = MissingAllowListError(
                "Setting 'account_codes' is empty: the data stream exports only the accounts listed there (the "
                "others hold MNPI); list them or deselect the data stream."
            )
            setattr(error, STREAM_ATTR, DataStream.name)
            raise error
        super().sync_all()


if __name__ == "__main__":
    TapAdaptive.cli()
