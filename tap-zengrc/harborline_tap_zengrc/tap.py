"""The tap-zengrc entry point: settings and the list of streams."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Tap
from singer_sdk import typing as th

from harborline_singer_shared.http import RATE_LIMIT_SETTINGS
from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import pseudonymization_settings
from harborline_singer_shared.retry import RETRY_SETTINGS
from harborline_tap_zengrc.client import DEFAULT_PAGE_SIZE_PARAMETER
from harborline_tap_zengrc.streams import PERSONAL_DATA_FIELDS, STREAM_TYPES

if TYPE_CHECKING:
    from harborline_tap_zengrc.client import ZenGRCStream

#: Environment variables read for a credential the config does not set, in order. The
#: ``TAP_ZENGRC_*`` names are the SDK's convention; ``ZENGRC_*`` are the names GitLab's
#: deployment (and its Meltano project) already uses for the same key pair.
CREDENTIAL_ENV_VARS: dict[str, tuple[str, ...]] = {
    "username": ("TAP_ZENGRC_USERNAME", "ZENGRC_USERNAME"),
    "password": ("TAP_ZENGRC_PASSWORD", "ZENGRC_PASSWORD"),
}


class TapZenGRC(HarborlinePluginMixin, Tap):
    """Singer tap for the ZenGRC REST API v2."""

    name = "tap-zengrc"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-tap-zengrc"
    #: Pseudonymized unless the config says otherwise (`pseudonymize: {}` opts out): private by default.
    personal_data_fields = PERSONAL_DATA_FIELDS

    config_jsonschema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property(
            "api_url",
            th.StringType(pattern=r"^https?://"),
            required=True,
            title="API URL",
            description=(
                "Base URL of the tenant's API, e.g. https://acme.api.zengrc.com/api/v2 (the "
                "tenant host alone also works; /api/v2 is then appended)."
            ),
        ),
        th.Property(
            "username",
            th.StringType,
            required=True,
            secret=True,
            title="API key id",
            description=(
                "ZenGRC API key id, sent as the HTTP basic-auth user name. Also read from "
                "TAP_ZENGRC_USERNAME or ZENGRC_USERNAME when not set."
            ),
        ),
        th.Property(
            "password",
            th.StringType,
            required=True,
            secret=True,
            title="API key secret",
            description=(
                "ZenGRC API key secret, sent as the HTTP basic-auth password. Also read from "
                "TAP_ZENGRC_PASSWORD or ZENGRC_PASSWORD when not set."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Emit only records with updated_at at or after this time on the first sync "
                "(all pages are still read: the API has no updated-since filter)."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1),
            description=(
                "Records per page to ask for. Unset: the API's default page size (the parameter is not sent)."
            ),
        ),
        th.Property(
            "page_size_parameter",
            th.StringType,
            default=DEFAULT_PAGE_SIZE_PARAMETER,
            description=(
                "Name of the query parameter that carries page_size. The vendor does not "
                "document it publicly; change it if your tenant's API uses another name."
            ),
        ),
        *RETRY_SETTINGS,
        *RATE_LIMIT_SETTINGS,
        *pseudonymization_settings(PERSONAL_DATA_FIELDS),
    ).to_dict()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Fill missing credentials from the environment, then validate as usual.

        This runs inside the SDK's constructor before validation, which is the only point where a
        required setting can still come from a variable the SDK does not know (``ZENGRC_*``).
        """
        for setting, variables in CREDENTIAL_ENV_VARS.items():
            if self._config.get(setting):
                continue
            for variable in variables:
                value = os.environ.get(variable)
                if value:
                    self._config[setting] = value
                    break
        return super()._validate_config(raise_errors=raise_errors)

    def discover_streams(self) -> list[ZenGRCStream]:
        """Return one stream per ZenGRC object type."""
        return [stream_class(tap=self) for stream_class in STREAM_TYPES]


if __name__ == "__main__":
    TapZenGRC.cli()
