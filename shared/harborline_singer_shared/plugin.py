"""Behaviour every Harborline tap and target shares at the CLI boundary.

- Secret settings are masked in every log line from the moment the plugin is built (defence in depth: code should
  never log them, and this makes sure a slip does not leak them).
- Errors that are the user's to fix (credentials, an API that keeps failing, bad input, a refused schema change) are
  reported as ONE clear log line and exit code 1, not a Python traceback a user has to read from the bottom.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import io
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers._typing import is_integer_type, is_number_type

from harborline_singer_shared.dates import parse_datetime
from harborline_singer_shared.pseudonymize import check_pseudonymize_at_startup
from harborline_singer_shared.redaction import install_secret_redaction, secret_values_from_config

if TYPE_CHECKING:
    import click

#: Settings whose misspelling would silently load personal data in clear: a near miss of one is an error.
PRIVACY_SETTINGS = ("pseudonymize", "pseudonymization_key", "pseudonymization_key_version")
#: How alike an unknown setting must be to a known one to be called a near miss (difflib ratio).
NEAR_MISS = 0.75
#: Attribute a stream sets on a clear error raised while it synced, so the one error line can name the stream.
STREAM_ATTR = "harborline_stream"
#: The SDK logs this before re-raising any error of a stream; the plugin's own one line follows, so it is dropped.
_SDK_SYNC_ERROR = "An unhandled error occurred while syncing '%s'"


def config_file_problem(path: str) -> str | None:
    """What is wrong with a `--config` file, in words, or None when it holds a JSON object."""
    file = Path(path)
    if not file.exists():
        return "does not exist"
    if file.is_dir():
        return "is a folder, not a file"
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    problem = json_object_problem(text, "settings")
    if problem and problem.startswith("is not valid JSON") and file.suffix.lower() in {".yml", ".yaml"}:
        problem += " (--config takes JSON, not YAML)"
    return problem


def json_object_problem(text: str, holding: str) -> str | None:
    """What keeps `text` from being a JSON object (of `holding`), in words, or None."""
    if not text.strip():
        return "is empty"
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if not isinstance(loaded, dict):
        return f"holds a JSON {type(loaded).__name__.replace('dict', 'object')}, not an object of {holding}"
    return None


class _DropSdkSyncError(logging.Filter):
    """Drops the SDK's "An unhandled error occurred while syncing" line: the plugin reports the error once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _SDK_SYNC_ERROR


def raw_config(config: Any, env_prefix: str | None) -> dict[str, Any]:
    """The settings as given (a dict, config file path(s)) plus `<PREFIX>*` variables, before any validation.

    With `env_prefix` None, only what was given: the settings a user wrote (and may have misspelt).
    """
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
        if env_prefix is not None and name.startswith(env_prefix):
            merged.setdefault(name.removeprefix(env_prefix).lower(), value)
    return merged


_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def env_number(variable: str, setting: str, text: str, *, integer: bool) -> int | float:
    """A numeric setting from the environment (always text there); anything else is one error naming the variable."""
    value = text.strip()
    if integer and _INTEGER.fullmatch(value):
        return int(value)
    if not integer and _NUMBER.fullmatch(value):
        return int(value) if _INTEGER.fullmatch(value) else float(value)
    what = "an integer" if integer else "a number"
    msg = f"Environment variable {variable} (setting '{setting}') must be {what}, such as 5."
    raise ConfigValidationError(msg, errors=[msg])


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
        # Everything a user can get wrong in the config is found here, before any request or any output.
        given = raw_config(kwargs.get("config", args[0] if args else None), env_prefix=None)
        try:
            self._check_unknown_settings(given)
            self._check_date_settings()
            streams = getattr(self, "streams", None)  # a Tap: its streams are discovered by now
            if isinstance(streams, dict):
                check_pseudonymize_at_startup(self, streams)  # type: ignore[arg-type]
                for stream in streams.values():
                    stream.logger.addFilter(_DropSdkSyncError())
        except ConfigValidationError as exc:
            # The SDK's --discover callback logs only `errors` (and exits 1 silently without them).
            raise ConfigValidationError(str(exc), errors=exc.errors or [str(exc)]) from None

    # A private SDK hook, overridden because the SDK's own parse turns a non-integer into a ValueError traceback and
    # leaves `number` settings as text (then refused as "not of type 'number'"): numbers are parsed here, the rest
    # (arrays, objects, booleans, .env files) still by the SDK's function.
    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:  # noqa: N805
        schema = cls.config_jsonschema  # type: ignore[attr-defined]
        cls.append_builtin_config(schema)  # type: ignore[attr-defined]
        prefix: str = cls._env_var_prefix  # type: ignore[attr-defined]
        properties = schema.get("properties", {})
        numeric = {n: p for n, p in properties.items() if is_integer_type(p) or is_number_type(p)}
        config = parse_environment_config(
            {**schema, "properties": {n: p for n, p in properties.items() if n not in numeric}}, prefix
        )
        for name, prop in numeric.items():
            variable = prefix + name.upper().replace("-", "_")
            if variable in os.environ:
                config[name] = env_number(variable, name, os.environ[variable], integer=bool(is_integer_type(prop)))
        return config

    def _check_unknown_settings(self, given: dict[str, Any]) -> None:
        """Warn about a setting the plugin does not know, naming the closest known one; refuse a privacy near miss.

        A misspelt `pseudonymise` would otherwise be ignored and personal data loaded in clear, with exit code 0.
        """
        known = set(self.config_jsonschema.get("properties", {}))  # type: ignore[attr-defined]
        for name in sorted(set(given) - known):
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=NEAR_MISS)
            if close and close[0] in PRIVACY_SETTINGS:
                msg = (
                    f"Unknown setting '{name}': did you mean '{close[0]}'? A misspelt privacy setting is refused, "
                    "so that personal data is never loaded in clear by mistake."
                )
                raise ConfigValidationError(msg)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.logger.warning("Unknown setting '%s' is ignored%s.", name, hint)  # type: ignore[attr-defined]

    def _check_date_settings(self) -> None:
        """Date and date-time settings parse at start-up (the SDK's schema check does not look at formats)."""
        properties = self.config_jsonschema.get("properties", {})  # type: ignore[attr-defined]
        for name, prop in properties.items():
            value = self.config.get(name)  # type: ignore[attr-defined]
            if value is None or not isinstance(prop, dict) or prop.get("format") not in {"date-time", "date"}:
                continue
            if parse_datetime(value) is None:
                msg = (
                    f"Setting '{name}' must be an ISO 8601 date or date-time such as 2024-01-31 or "
                    f"2024-01-31T00:00:00Z, not {value!r}."
                )
                raise ConfigValidationError(msg)

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> Any:
        """Read `--config` files; a missing or malformed file is one line naming it, not a traceback."""
        for path in value:
            if path == "ENV":
                continue
            problem = config_file_problem(path)
            if problem is not None:
                cls.logger.error("Config file '%s' %s.", path, problem)  # type: ignore[attr-defined]
                ctx.exit(1)
        return super().cb_config(ctx, param, value)  # type: ignore[misc]

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the SDK's CLI entry point; report a clear error as one line and exit 1."""
        # What is imported by now lives until exit: out of the cyclic collector's way, full collections during the
        # run and the ones at interpreter exit do not walk it (with the Snowflake connector imported, exit took
        # 0.17 s more without this).
        gc.freeze()
        for option, holding in (("state", "bookmarks"), ("catalog", "streams")):
            handle = kwargs.get(option)
            if handle is None:
                continue
            # The SDK parses these files without a word about which one failed: an empty state file (a first
            # run's `tail -1 > state.json` of nothing) would be a traceback.
            text = handle.read()
            problem = json_object_problem(text, holding)
            if problem is not None:
                name = getattr(handle, "name", f"--{option}")
                cls.logger.error("%s file '%s' %s.", option.capitalize(), name, problem)  # type: ignore[attr-defined]
                sys.exit(1)
            kwargs[option] = io.StringIO(text)
        try:
            return super().invoke(*args, **kwargs)  # type: ignore[misc]
        except cls.clear_errors as exc:
            message = str(exc)
            stream = getattr(exc, STREAM_ATTR, None)
            if stream and not message.startswith("stream '"):
                message = f"stream {stream!r}: {message}"  # every error line reads `stream 'x': ...`
            cls.logger.error("%s", message)  # type: ignore[attr-defined]  # noqa: TRY400 - the message is the story
            sys.exit(1)
        except ConfigValidationError as exc:
            # The SDK's CLI would log each error and then "Config validation failed" on a line of its own.
            reasons = "; ".join(str(e) for e in exc.errors) or str(exc)
            cls.logger.error("Config validation failed: %s", reasons)  # type: ignore[attr-defined]  # noqa: TRY400
            sys.exit(1)
