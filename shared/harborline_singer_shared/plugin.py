"""Behaviour every Harborline tap and target shares at the CLI boundary.

- Secret settings are masked in every log line from the moment the plugin is built (defence in depth: code should
  never log them, and this makes sure a slip does not leak them).
- Errors that are the user's to fix (credentials, an API that keeps failing, bad input, a refused schema change) are
  reported as ONE clear log line and exit code 1, not a Python traceback a user has to read from the bottom.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from singer_sdk.exceptions import FatalAPIError

from harborline_singer_shared.redaction import install_secret_redaction, secret_values_from_config


class HarborlinePluginMixin:
    """Mix into a Tap or Target class before the SDK base: `class TapX(HarborlinePluginMixin, Tap)`."""

    #: Exceptions reported as one line. Subclasses extend the tuple with their own input/warehouse errors.
    clear_errors: ClassVar[tuple[type[BaseException], ...]] = (FatalAPIError,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_secret_redaction(
            secret_values_from_config(self.config, self.config_jsonschema),  # type: ignore[attr-defined]
            self.logger,  # type: ignore[attr-defined]
        )

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the SDK's CLI entry point; report a clear error as one line and exit 1."""
        try:
            return super().invoke(*args, **kwargs)  # type: ignore[misc]
        except cls.clear_errors as exc:
            cls.logger.error("%s", exc)  # type: ignore[attr-defined]  # noqa: TRY400 - the message is the story
            sys.exit(1)
