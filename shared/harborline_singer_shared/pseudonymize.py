"""Keyed pseudonymization shared by every Harborline tap and target.

Why this exists: personal data (e-mail addresses, phone numbers, customer ids) must not land in the
warehouse in clear text, yet analysts still need to join the same person across sources. A keyed
HMAC gives both: without the key nobody can confirm a guess ("is this token alice@example.com?"),
which an unkeyed hash would allow, and with one shared key every plugin produces the same token for
the same value, so joins keep working. Taps and targets MUST use this module (never their own hash)
so the rules below stay identical everywhere.

Settings (append :data:`PSEUDONYMIZATION_SETTINGS` to the plugin's ``config_jsonschema``):

* ``pseudonymize``: object mapping a stream name to a list of field paths. Nested fields use dots
  (``user.email``). The stream name ``"*"`` applies its paths to every stream that has the field.
* ``pseudonymization_key``: the secret HMAC key (at least 16 bytes of UTF-8). If the setting is
  unset or empty, the environment variable ``HARBORLINE_PSEUDONYMIZATION_KEY`` is used instead; the
  setting wins when both exist.
* ``pseudonymization_key_version``: short label (``[A-Za-z0-9_-]{1,16}``, default ``"1"``) written
  into each token so that keys can rotate and old and new tokens are never confused.

Token format::

    hl1:<key_version>:<digest>

``hl1`` names this scheme (version 1 of the algorithm and the normalization rules below);
``<digest>`` is the URL-safe base64 of HMAC-SHA256(key, UTF-8 bytes of the normalized value)
without ``=`` padding (always 43 characters). Example: ``hl1:1:3q2-7w...``. A string that already
is exactly such a token is passed through unchanged, so pseudonymizing twice (tap and target both
configured) keeps the token of the first pass and joins still work.

Normalization (applied before hashing, identical in every plugin):

* ``None`` (JSON null) is never tokenized: it stays ``None``.
* Strings: Unicode NFC, then leading/trailing whitespace stripped. If the result looks like an
  e-mail address (exactly one ``@``, no whitespace, text on both sides) it is lower-cased, because
  vendors disagree on the case of the same address. An empty string is tokenized as ``""``.
* Booleans: ``"true"`` / ``"false"``. Integers: decimal digits (``42`` -> ``"42"``). Floats and
  decimals: shortest plain decimal without exponent or trailing zeros (``42.0`` -> ``"42"``,
  ``Decimal("1.50")`` -> ``"1.5"``). Deliberately, a value is tokenized from its text and NOT
  from its JSON type, so ``42`` from one API and ``"42"`` from a CSV export join; sources disagree
  on the types of ids far more often than two different ids share a text. Strings are not parsed,
  so ``"42.0"`` stays ``"42.0"``.
* Dates, times, datetimes: ``isoformat()``; UUIDs: canonical lower-case text.
* Objects and arrays: canonical JSON (keys sorted, no whitespace, non-ASCII kept, nested strings
  NFC-normalized but otherwise verbatim, nested numbers as above). A field whose value is an array
  is therefore tokenized as ONE value; arrays in the *middle* of a path (``lines.sku`` where
  ``lines`` is an array of objects) are traversed and every element is pseudonymized.

Schema rule: a pseudonymized field becomes ``{"type": ["string", "null"]}``, or ``{"type":
"string"}`` when the original type did not allow null (null stays null, so nullability is kept; the
``required`` list is untouched). ``title``/``description`` are kept; formats, enums, patterns and
ranges are dropped because they describe the clear value. Field names that themselves contain a dot
cannot be addressed.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import difflib
import hashlib
import hmac
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, MapperNotInitialized
from singer_sdk.singerlib import Schema

from harborline_singer_shared.redaction import install_secret_redaction

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.plugin_base import PluginBase
    from singer_sdk.singerlib import Catalog
    from singer_sdk.streams import Stream

    _StreamBase = Stream
else:
    _StreamBase = object

__all__ = [
    "ALL_STREAMS",
    "DEFAULT_KEY_VERSION",
    "KEY_ENV_VAR",
    "MIN_KEY_BYTES",
    "OPT_OUT_HINT",
    "PSEUDONYMIZATION_SETTINGS",
    "TOKEN_PREFIX",
    "PseudonymizedStreamMixin",
    "Pseudonymizer",
    "check_pseudonymize_at_startup",
    "is_token",
    "normalize_value",
    "pseudonymization_settings",
    "pseudonymizer_for_plugin",
]

KEY_ENV_VAR = "HARBORLINE_PSEUDONYMIZATION_KEY"
"""Environment variable read when the ``pseudonymization_key`` setting is unset."""

TOKEN_PREFIX = "hl1"  # noqa: S105 - a scheme tag, not a password
"""Scheme tag at the start of every token; bump it only together with the normalization rules."""

DEFAULT_KEY_VERSION = "1"
"""Key version used when ``pseudonymization_key_version`` is unset."""

MIN_KEY_BYTES = 16
"""Shorter keys are refused: a short key can be brute-forced and then every token reversed."""

ALL_STREAMS = "*"
"""Stream name in ``pseudonymize`` whose paths apply to every stream that has the field."""

_KEY_VERSION_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}:[A-Za-z0-9_-]{{1,16}}:[A-Za-z0-9_-]{{43}}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
_CARRIED_ANNOTATIONS = ("title", "description")
_CACHE_ATTR = "_harborline_pseudonymizer"
_SCHEMA_CACHE_ATTR = "_harborline_pseudonymized_schema"
_SCHEMA_SOURCE_ATTR = "_harborline_schema_source"

OPT_OUT_HINT = "or opt out of pseudonymization with `pseudonymize: {}`"


def pseudonymization_settings(personal_data: Mapping[str, Sequence[str]] | None = None) -> th.PropertiesList:
    """The settings fragment; a tap passes its personal-data fields, which are pseudonymized unless configured.

    Private by default: with no `pseudonymize` in the config the tap pseudonymizes `personal_data` (and stops at
    start-up without a key); a `pseudonymize` value replaces the default; `pseudonymize: {}` is the opt-out.
    """
    description = (
        "Fields to replace by keyed HMAC-SHA256 tokens, per stream: "
        '{"users": ["email", "address.phone"], "*": ["email"]}. Dots address nested fields; '
        '"*" means every stream that has the field.'
    )
    extra: dict[str, Any] = {}
    if personal_data:
        description += (
            " Unset: the tap's personal-data fields (this default) are pseudonymized, and a key is required; "
            "a value replaces the default; {} turns pseudonymization off."
        )
        extra["default"] = {stream: list(paths) for stream, paths in personal_data.items()}
    return th.PropertiesList(
        th.Property(
            "pseudonymize",
            th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
            description=description,
            **extra,
        ),
        th.Property(
            "pseudonymization_key",
            th.StringType,
            secret=True,
            description=(
                "Secret HMAC key (at least 16 bytes). Use the same key in every tap and target so "
                f"tokens join. Falls back to the {KEY_ENV_VAR} environment variable."
            ),
        ),
        th.Property(
            "pseudonymization_key_version",
            th.StringType(pattern=r"^[A-Za-z0-9_-]{1,16}$"),
            default=DEFAULT_KEY_VERSION,
            description="Label of the key, written into every token so keys can rotate.",
        ),
    )


PSEUDONYMIZATION_SETTINGS = pseudonymization_settings()
"""Settings fragment with nothing pseudonymized by default, for targets.

Use: ``PropertiesList(..., *PSEUDONYMIZATION_SETTINGS)``.

Taps use ``pseudonymization_settings(PERSONAL_DATA_FIELDS)`` instead, so their personal data is private by default.
"""


def is_token(value: object) -> bool:
    """Tell whether ``value`` already is a pseudonymization token.

    Why: a value pseudonymized by a tap must not be pseudonymized again by a target, or the two
    layers would produce tokens that no longer join.
    """
    return isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None


def normalize_value(value: Any) -> str:
    """Return the canonical text that is hashed for ``value`` (see the module docstring).

    Why public: tests and other languages' implementations can check they normalize identically.

    Raises:
        TypeError: For types without a defined canonical form (the message names only the type,
            never the value, because the value is personal data). ``None`` is also refused: it
            is never tokenized.
    """
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value).strip()
        if _EMAIL_RE.fullmatch(text):
            text = text.lower()
        return text
    if value is None:
        raise TypeError("None is not tokenized; it stays None")
    if isinstance(value, (Mapping, list, tuple)):
        return _canonical_json(value)
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    """Canonical text of a non-string scalar; shared by top level and canonical JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        return _number_text(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot pseudonymize a value of type {type(value).__name__}")


def _number_text(value: float | Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros, so 42, 42.0 and 42.00 agree."""
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not number.is_finite():
        return str(number)
    text = format(number.normalize(), "f")
    return "0" if text == "-0" else text


def _canonical_json(value: Any) -> str:
    """Canonical JSON with sorted keys and no whitespace; numbers use the canonical text."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(unicodedata.normalize("NFC", value), ensure_ascii=False)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        items = [
            f"{_canonical_json(key)}:{_canonical_json(value[key])}"
            for key in sorted(value, key=lambda k: unicodedata.normalize("NFC", k))
        ]
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical_json(item) for item in value) + "]"
    text = _scalar_text(value)
    if isinstance(value, (bool, int, float, Decimal)):
        return text
    return json.dumps(text)


def _parse_paths(raw: Any) -> dict[str, list[tuple[str, ...]]]:
    """Validate the ``pseudonymize`` setting early so a typo fails at start-up, not mid-sync."""
    if not isinstance(raw, Mapping):
        raise ConfigValidationError(
            "Setting 'pseudonymize' must be an object of stream name -> list of field paths.",
        )
    parsed: dict[str, list[tuple[str, ...]]] = {}
    for stream_name, paths in raw.items():
        if not isinstance(stream_name, str) or not stream_name:
            raise ConfigValidationError("Setting 'pseudonymize' has an empty stream name.")
        if isinstance(paths, str) or not isinstance(paths, Sequence):
            raise ConfigValidationError(
                f"Setting 'pseudonymize' for stream '{stream_name}' must be a list of field paths.",
            )
        stream_paths: list[tuple[str, ...]] = []
        for path in paths:
            if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
                raise ConfigValidationError(
                    f"Setting 'pseudonymize' for stream '{stream_name}' has an invalid field "
                    f"path {path!r}: use dot-separated field names such as 'user.email'.",
                )
            parts = tuple(path.split("."))
            if parts not in stream_paths:
                stream_paths.append(parts)
        if stream_paths:
            parsed[stream_name] = stream_paths
    return parsed


def _resolve_key(config: Mapping[str, Any]) -> str | None:
    """Return the configured key: the setting if non-empty, else the environment variable."""
    key = config.get("pseudonymization_key")
    if isinstance(key, str) and key:
        return key
    env_key = os.environ.get(KEY_ENV_VAR)
    return env_key or None


def _allows_null(schema: Mapping[str, Any]) -> bool:
    """Whether a field schema admits null; unknown shapes count as nullable (the safe side)."""
    for keyword in ("anyOf", "oneOf"):
        alternatives = schema.get(keyword)
        if isinstance(alternatives, list):
            return any(isinstance(alt, Mapping) and _allows_null(alt) for alt in alternatives)
    type_ = schema.get("type")
    if type_ is None:
        return True
    if isinstance(type_, str):
        return type_ == "null"
    return "null" in type_


def _object_node(schema: Any) -> dict[str, Any] | None:
    """Find the schema that holds ``properties`` below ``schema``, looking through arrays/anyOf."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("properties"), dict):
        return schema
    items = schema.get("items")
    if isinstance(items, dict):
        return _object_node(items)
    for keyword in ("anyOf", "oneOf"):
        alternatives = schema.get(keyword)
        if isinstance(alternatives, list):
            for alt in alternatives:
                found = _object_node(alt)
                if found is not None:
                    return found
    return None


class Pseudonymizer:
    """Turns configured fields into keyed tokens, in schemas and records.

    Build it once per plugin (``from_config`` or :func:`pseudonymizer_for_plugin`); it is cheap to
    call per record. The key is only held inside an HMAC object and never appears in ``repr``,
    ``str``, exceptions or logs.
    """

    __slots__ = ("_key_version", "_mac", "_paths", "_prefix")

    def __init__(
        self,
        key: str | bytes,
        *,
        key_version: str = DEFAULT_KEY_VERSION,
        paths: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Validate the key and paths; raises ConfigValidationError naming the bad setting."""
        if not isinstance(key, (str, bytes)):
            raise ConfigValidationError("Setting 'pseudonymization_key' must be a string.")
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        if len(key_bytes) < MIN_KEY_BYTES:
            raise ConfigValidationError(
                f"Setting 'pseudonymization_key' (or {KEY_ENV_VAR}) is too short: use at least "
                f"{MIN_KEY_BYTES} bytes of random text, e.g. `openssl rand -base64 32`.",
            )
        if not isinstance(key_version, str) or not _KEY_VERSION_RE.fullmatch(key_version):
            raise ConfigValidationError(
                "Setting 'pseudonymization_key_version' must match [A-Za-z0-9_-]{1,16}.",
            )
        self._mac = hmac.new(key_bytes, digestmod=hashlib.sha256)
        self._key_version = key_version
        self._prefix = f"{TOKEN_PREFIX}:{key_version}:"
        self._paths = _parse_paths(paths or {})

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], default: Mapping[str, Sequence[str]] | None = None
    ) -> Pseudonymizer | None:
        """Build from plugin settings; ``None`` when nothing is configured to pseudonymize.

        ``default`` (a tap's personal-data fields) applies when the config has no ``pseudonymize`` key at all; an
        explicit ``{}`` opts out. The key comes from ``pseudonymization_key`` or else
        ``HARBORLINE_PSEUDONYMIZATION_KEY``.

        Raises:
            ConfigValidationError: fields are to be pseudonymized but no usable key or version exists,
                or the setting is malformed. Raised at start-up so no clear data is ever written.
        """
        # The SDK fills a schema default into the config while validating it, so the default arrives either way.
        raw = config.get("pseudonymize", default)
        from_default = default is not None and raw == default
        if not raw:
            return None
        paths = _parse_paths(raw)
        if not paths:
            return None
        key = _resolve_key(config)
        if key is None:
            what = (
                "This tap pseudonymizes its personal-data fields by default (the default of 'pseudonymize'), "
                if from_default
                else "Setting 'pseudonymize' is set, "
            )
            raise ConfigValidationError(
                f"{what}but no key was found: set 'pseudonymization_key' or the environment variable "
                f"{KEY_ENV_VAR}, {OPT_OUT_HINT}.",
            )
        version = config.get("pseudonymization_key_version") or DEFAULT_KEY_VERSION
        return cls(key, key_version=version, paths=raw)

    @property
    def key_version(self) -> str:
        """The key label written into every token."""
        return self._key_version

    def has_path(self, schema: Mapping[str, Any], path: tuple[str, ...]) -> bool:
        """Whether the schema declares the field at ``path`` (through nested objects and arrays)."""
        return self._replace_leaf_schema(copy.deepcopy(dict(schema)), path)

    @property
    def stream_names(self) -> list[str]:
        """Stream names with configured paths (``"*"`` included), for diagnostics."""
        return sorted(self._paths)

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_version={self._key_version!r}, streams={self.stream_names!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would have to serialize the key; refuse instead of leaking it to disk.
        raise TypeError("Pseudonymizer cannot be pickled (it holds a secret key)")

    def token(self, value: Any) -> str | None:
        """Return the token for ``value``; ``None`` stays ``None``, existing tokens pass through."""
        if value is None:
            return None
        if is_token(value):
            return str(value)
        mac = self._mac.copy()
        mac.update(normalize_value(value).encode("utf-8"))
        digest = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
        return self._prefix + digest

    def own_paths(self, stream_name: str) -> list[tuple[str, ...]]:
        """Paths configured for ``stream_name`` by name (not through ``"*"``)."""
        return list(self._paths.get(stream_name, [])) if stream_name != ALL_STREAMS else []

    def paths_for(self, stream_name: str) -> list[tuple[str, ...]]:
        """Paths to pseudonymize in ``stream_name``: its own, then those configured for ``"*"``."""
        own = self._paths.get(stream_name, []) if stream_name != ALL_STREAMS else []
        result = list(own)
        result.extend(p for p in self._paths.get(ALL_STREAMS, []) if p not in result)
        return result

    def transform_schema(
        self,
        stream_name: str,
        schema: Mapping[str, Any],
        *,
        strict: bool = True,
    ) -> dict[str, Any]:
        """Return a NEW schema in which every pseudonymized field is a string.

        Args:
            stream_name: Stream the schema belongs to.
            schema: The stream's JSON schema; not modified.
            strict: If true, a path configured for this stream (not via ``"*"``) that is absent
                from the schema raises, because a typo there would silently leak clear data.

        Raises:
            ConfigValidationError: A stream-specific path does not exist in the schema.
        """
        new_schema: dict[str, Any] = copy.deepcopy(dict(schema))
        own = set(self._paths.get(stream_name, []))
        for path in self.paths_for(stream_name):
            found = self._replace_leaf_schema(new_schema, path)
            if not found and strict and path in own:
                raise ConfigValidationError(
                    f"Setting 'pseudonymize' names field '{'.'.join(path)}' for stream "
                    f"'{stream_name}', but the stream's schema has no such field.",
                )
        return new_schema

    @staticmethod
    def _replace_leaf_schema(schema: dict[str, Any], path: tuple[str, ...]) -> bool:
        """Replace the leaf schema in place; False when the path does not exist."""
        node: Any = schema
        for part in path[:-1]:
            holder = _object_node(node)
            if holder is None or part not in holder["properties"]:
                return False
            node = holder["properties"][part]
        holder = _object_node(node)
        if holder is None or path[-1] not in holder["properties"]:
            return False
        old = holder["properties"][path[-1]]
        old = old if isinstance(old, Mapping) else {}
        leaf: dict[str, Any] = {"type": ["string", "null"] if _allows_null(old) else "string"}
        leaf.update({k: old[k] for k in _CARRIED_ANNOTATIONS if k in old})
        holder["properties"][path[-1]] = leaf
        return True

    def transform_record(self, stream_name: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return a NEW record with configured fields tokenized; the input is not modified.

        Absent fields stay absent, nulls stay null, arrays along a path are traversed.
        """
        result: Any = dict(record)
        for path in self.paths_for(stream_name):
            result = self._apply(result, path)
        return dict(result)

    def _apply(self, node: Any, path: tuple[str, ...]) -> Any:
        """Copy-on-write walk: only containers along the path are copied."""
        if isinstance(node, list):
            return [self._apply(item, path) for item in node]
        if not isinstance(node, Mapping) or path[0] not in node:
            return node
        copied = dict(node)
        if len(path) == 1:
            copied[path[0]] = self.token(node[path[0]])
        else:
            copied[path[0]] = self._apply(node[path[0]], path[1:])
        return copied


class _Unset:
    """Marker for "not built yet", since ``None`` is a valid cached value."""


_UNSET = _Unset()


def pseudonymizer_for_plugin(plugin: PluginBase) -> Pseudonymizer | None:
    """Return the plugin's Pseudonymizer, built once and cached on the plugin object.

    Why cached: streams and sinks ask per record; building validates config and the key once. On
    first build the key is also registered with :func:`install_secret_redaction` for the plugin's
    logger, so even an accidental log line cannot reveal it.
    """
    cached = plugin.__dict__.get(_CACHE_ATTR, _UNSET)
    if not isinstance(cached, _Unset):
        return cached  # type: ignore[no-any-return]
    config = plugin.config
    pseudonymizer = Pseudonymizer.from_config(config, default=getattr(plugin, "personal_data_fields", None))
    if pseudonymizer is not None:
        install_secret_redaction([_resolve_key(config)], plugin.logger)
    plugin.__dict__[_CACHE_ATTR] = pseudonymizer
    return pseudonymizer


class PseudonymizedStreamMixin(_StreamBase):
    """Stream mixin: schema and records of the stream are pseudonymized per the tap's settings.

    Put it first: ``class UsersStream(PseudonymizedStreamMixin, RESTStream): ...``. The schema
    property is rewritten so discovery, the catalog and SCHEMA messages show tokens as strings;
    ``post_process`` tokenizes each record after the stream's own post-processing.

    A ``schema`` defined in a subclass body (a dict, a ``StreamSchema`` descriptor or a property)
    would hide the mixin's property, so ``__init_subclass__`` moves it aside and reads it from
    there: plugin authors can declare schemas as usual.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("schema")
        mixin_property = PseudonymizedStreamMixin.__dict__["schema"]
        if own is not None and own is not mixin_property:
            type.__setattr__(cls, _SCHEMA_SOURCE_ATTR, own)
            type.__setattr__(cls, "schema", mixin_property)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fail at start-up (tap construction) on a missing key, not after reading data.
        pseudonymizer_for_plugin(self._tap)

    @property
    def pseudonymizer(self) -> Pseudonymizer | None:
        """The tap's shared Pseudonymizer, or None when nothing is configured."""
        return pseudonymizer_for_plugin(self._tap)

    def _raw_schema(self) -> dict[str, Any]:
        """The schema as the stream declares it, before pseudonymization."""
        for klass in type(self).__mro__:
            if _SCHEMA_SOURCE_ATTR in klass.__dict__:
                source = klass.__dict__[_SCHEMA_SOURCE_ATTR]
                if isinstance(source, Mapping):
                    return dict(source) if not isinstance(source, dict) else source
                return source.__get__(self, type(self))  # type: ignore[no-any-return]
        return super().schema

    @property
    def schema(self) -> dict[str, Any]:
        """The stream schema with pseudonymized fields turned into strings (cached)."""
        raw = self._raw_schema()
        pseudonymizer = self.pseudonymizer
        if pseudonymizer is None:
            return raw
        cached = self.__dict__.get(_SCHEMA_CACHE_ATTR)
        if cached is not None and (cached[0] is raw or cached[0] == raw):
            return cached[1]  # type: ignore[no-any-return]
        transformed = pseudonymizer.transform_schema(self.name, raw)
        self.__dict__[_SCHEMA_CACHE_ATTR] = (raw, transformed)
        return transformed

    def apply_catalog(self, catalog: Catalog) -> None:
        """Also rewrite the input catalog's schema: an old catalog must not reintroduce types.

        The SDK registers stream maps (which produce SCHEMA messages) from the input catalog
        before streams exist, so the rewritten schema is put back into the catalog entry and
        re-registered with the tap's mapper.
        """
        super().apply_catalog(catalog)
        pseudonymizer = self.pseudonymizer
        if pseudonymizer is None or self._input_schema is None:
            return
        transformed = pseudonymizer.transform_schema(self.name, self._input_schema, strict=False)
        if transformed == self._input_schema:
            return
        self._input_schema = transformed
        entry = catalog.get_stream(self.name)
        if entry is not None:
            entry.schema = Schema.from_dict(transformed)
        try:
            mapper = self._tap.mapper
        except MapperNotInitialized:
            return
        mapper.register_raw_stream_schema(self.name, transformed, self.primary_keys)
        self._stream_maps = None

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Run the stream's own post-processing first, then tokenize the configured fields."""
        processed = super().post_process(row, context)
        pseudonymizer = self.pseudonymizer
        if processed is None or pseudonymizer is None:
            return processed
        return pseudonymizer.transform_record(self.name, processed)


def check_pseudonymize_at_startup(tap: PluginBase, streams: Mapping[str, Stream]) -> None:
    """Every stream and field the tap's ``pseudonymize`` names exists: found at start-up, before any request.

    A typo would otherwise leave that field in clear (or fail only when the stream starts, after other output).
    A ``"*"`` field must exist in at least one stream.

    Raises:
        ConfigValidationError: naming the stream or field that does not exist, or a missing key.
    """
    pseudonymizer = pseudonymizer_for_plugin(tap)
    if pseudonymizer is None:
        return
    unknown = sorted(set(pseudonymizer.stream_names) - set(streams) - {ALL_STREAMS})
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(streams), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigValidationError(
            f"Setting 'pseudonymize' names stream(s) {', '.join(repr(u) for u in unknown)}, which this tap does "
            f"not have ({hint}its streams: {', '.join(sorted(streams))}).",
        )
    schemas = {name: stream.schema for name, stream in streams.items()}
    for name, schema in schemas.items():
        missing = [p for p in pseudonymizer.own_paths(name) if not pseudonymizer.has_path(schema, p)]
        if missing:
            raise ConfigValidationError(
                f"Setting 'pseudonymize' names field '{'.'.join(missing[0])}' for stream '{name}', but the "
                "stream's schema has no such field.",
            )
    for path in pseudonymizer.paths_for(ALL_STREAMS):
        if not any(pseudonymizer.has_path(schema, path) for schema in schemas.values()):
            raise ConfigValidationError(
                f"Setting 'pseudonymize' names field '{'.'.join(path)}' for every stream (\"*\"), but no stream "
                "of this tap has such a field.",
            )
