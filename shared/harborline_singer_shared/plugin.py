"""Behaviour every Harborline tap and target shares at the CLI boundary.

- Secret settings are masked in every log line from the moment the plugin is built (defence in depth: code should
  never log them, and this makes sure a slip does not leak them).
- Errors that are the user's to fix (credentials, an API that keeps failing, bad input, a refused schema change) are
  reported as ONE clear log line and exit code 1, not a Python traceback a user has to read from the bottom.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, ClassVar

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError

from harborline_singer_shared.redaction import install_secret_redaction, secret_values_from_config


def raw_config(config: Any, env_prefix: str) -> dict[str, Any]:
    """The settings as given (a dict, config file path(s)) plus `<PREFIX>*` variables, before any validation."""
    merged: dict[str, Any] = {}
    sources = config if isinstance(config, (list, tuple)) else [config]
    for source in sources:
        if isinstance(source, dict):
            merged.update(source)
        elif isinstance(source, (str, os.PathLike)) and source != "ENV":
            with contextlib.suppress(OSError, ValueError), open(source, encoding="utf-8") as fh:  # noqa: PTH123
                loaded = json.load(fh)
                if isinstance(loaded, dict):
                    merged.update(loaded)
    for name, value in os.environ.items():
        if name.startswith(env_prefix):
            merged.setdefault(name.removeprefix(env_prefix).lower(), value)
    return merged


class HarborlinePluginMixin:
    """Mix into a Tap or Target class before the SDK base: `class TapX(HarborlinePluginMixin, Tap)`."""

    #: Exceptions reported as one line. Subclasses extend the tuple with their own input/warehouse errors.
    clear_errors: ClassVar[tuple[type[BaseException], ...]] = (FatalAPIError,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Mask secrets before the SDK validates the config: a mistyped secret (a number, a list) is otherwise echoed
        # in the validation error ("987654321 is not of type 'string' in config['password']").
        install_secret_redaction(
            secret_values_from_config(
                raw_config(kwargs.get("config", args[0] if args else None), self._env_var_prefix),  # type: ignore[attr-defined]
                self.config_jsonschema,  # type: ignore[attr-defined]
            ),
            type(self).logger,  # type: ignore[attr-defined]
        )
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
        except ConfigValidationError as exc:
            # The SDK's CLI would log each error and then "Config validation failed" on a line of its own.
            reasons = "; ".join(str(e) for e in exc.errors) or str(exc)
            cls.logger.error("Config validation failed: %s", reasons)  # type: ignore[attr-defined]  # noqa: TRY400
            sys.exit(1)
