"""Adaptive Planning's XML API on the wire: building a ``<call>`` and reading a ``<response>`` safely.

The API is plain XML over HTTP POST (no SOAP envelope)::

    <call method="exportAccounts" callerName="harborline"><credentials login=".." password=".." instanceCode=".."/>
      ...method-specific elements...</call>

    <response success="true|false"><messages><message key=".." type="..">text</message></messages><output>...</output>
    </response>

Calls are built with ElementTree, never by string formatting: passwords and version or level names contain ``&``,
``<`` and quotes. Responses are parsed from bytes (so the XML declaration's encoding wins over a bare ``text/xml``) by
defusedxml with DTDs forbidden: a document that declares a DTD or an entity (an XML bomb) is refused before anything
is expanded. ``exportData`` answers can be tens of MB, so :func:`iter_output_lines` feeds the parser chunk by chunk as
they arrive and hands the CSV text of ``<output>`` on line by line; nothing holds the whole answer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

# defusedxml ships no type hints (and types-defusedxml is not among this repo's dependencies).
import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException
from singer_sdk.exceptions import FatalAPIError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "AUTH_FAILURE_KEY",
    "AdaptiveAuthenticationError",
    "AdaptiveCallError",
    "Credentials",
    "MalformedResponseError",
    "UnsafeXMLError",
    "build_call",
    "iter_output_lines",
    "parse_response",
]

AUTH_FAILURE_KEY = "error-authentication-failure"
AUTH_SETTINGS = "`username`, `password` and `instance_code`"
_MESSAGE_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Credentials:
    """Who calls: sent in every call (the API is stateless). ``password`` is never logged or put in a message."""

    login: str
    password: str
    caller_name: str
    instance_code: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(login={self.login!r}, instance_code={self.instance_code!r}, password=***)"


@dataclass(frozen=True)
class Message:
    """One ``<message>`` of a response."""

    key: str
    text: str
    type: str = ""

    def __str__(self) -> str:
        text = " ".join(self.text.split())[:_MESSAGE_TEXT_LIMIT]
        return f"[{self.key or 'no key'}] {text}".rstrip()


class AdaptiveCallError(FatalAPIError):
    """A call answered ``success="false"``: retrying the same call cannot help."""

    def __init__(self, method: str, messages: Sequence[Message]) -> None:
        self.method = method
        self.messages = list(messages)
        details = "; ".join(str(m) for m in self.messages) or "no message"
        super().__init__(f'{method} failed: Adaptive answered success="false": {details}')


class AdaptiveAuthenticationError(AdaptiveCallError):
    """The credentials were refused (``error-authentication-failure``); never retried."""

    def __init__(self, method: str, messages: Sequence[Message]) -> None:
        super().__init__(method, messages)
        details = "; ".join(str(m) for m in self.messages)
        self.args = (
            (
                f"Authentication failed for {method}: Adaptive answered {details}. Check the {AUTH_SETTINGS} "
                "settings (an instance_code is needed only when the login has access to several instances)."
            ),
        )


class UnsafeXMLError(FatalAPIError):
    """The response declared a DTD or entities; it was refused, nothing was expanded."""


class MalformedResponseError(FatalAPIError):
    """The response is not an Adaptive ``<response>`` document (an HTML page, truncated XML ...)."""


def build_call(method: str, credentials: Credentials, children: Sequence[Element] = ()) -> bytes:
    """The request body of one call, as UTF-8 bytes with an XML declaration."""
    call = Element("call", {"method": method, "callerName": credentials.caller_name})
    attributes = {"login": credentials.login, "password": credentials.password}
    if credentials.instance_code:
        attributes["instanceCode"] = credentials.instance_code
    SubElement(call, "credentials", attributes)
    call.extend(children)
    return bytes(tostring(call, encoding="utf-8", xml_declaration=True))


def element(tag: str, attributes: dict[str, Any] | None = None, *children: Element) -> Element:
    """An element with attribute values as text (booleans as ``true``/``false``); None values are left out."""
    node = Element(tag)
    for name, value in (attributes or {}).items():
        if value is None:
            continue
        node.set(name, ("true" if value else "false") if isinstance(value, bool) else str(value))
    node.extend(children)
    return node


def _messages(root: Element) -> list[Message]:
    return [
        Message(m.get("key", ""), "".join(m.itertext()), m.get("type", "")) for m in root.iterfind("messages/message")
    ]


def raise_for_failure(method: str, success: str | None, messages: Sequence[Message]) -> None:
    """Raise the one clear error of a ``success="false"`` answer.

    Refused credentials (``error-authentication-failure``) and a refused instance code (any key naming the instance;
    the exact key is not documented) get their own error, naming the settings to check.
    """
    if success == "true":
        return
    if success is None:
        raise MalformedResponseError(f"{method}: the response has no success attribute; it is not an Adaptive answer")
    if any(m.key == AUTH_FAILURE_KEY or "instance" in m.key.lower() for m in messages):
        raise AdaptiveAuthenticationError(method, messages)
    raise AdaptiveCallError(method, messages)


def _unsafe(method: str, exc: Exception) -> UnsafeXMLError:
    return UnsafeXMLError(
        f"{method}: the response declares a DTD or an entity ({type(exc).__name__}); it was refused and nothing "
        "in it was expanded (an XML bomb, or not Adaptive answering)"
    )


def _malformed(method: str, exc: Exception) -> MalformedResponseError:
    return MalformedResponseError(f"{method}: the response is not well-formed XML ({exc}); check the `api_url` setting")


def parse_response(content: bytes, method: str) -> Element | None:
    """The ``<output>`` element of a whole (small) response, after checking ``success``.

    Raises:
        UnsafeXMLError: The document declares a DTD or entities.
        MalformedResponseError: Not XML, or not a ``<response>``.
        AdaptiveCallError: ``success="false"`` (:class:`AdaptiveAuthenticationError` for refused credentials).
    """
    try:
        root = SafeET.fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise _unsafe(method, exc) from None
    except ParseError as exc:
        raise _malformed(method, exc) from None
    if root.tag != "response":
        raise MalformedResponseError(f"{method}: the answer's root element is <{root.tag}>, not <response>")
    raise_for_failure(method, root.get("success"), _messages(root))
    output: Element | None = root.find("output")
    return output


class _StreamingTarget:
    """Parser target: remembers ``success`` and the messages; collects the text of the output element."""

    def __init__(self, output_path: tuple[str, ...]) -> None:
        self.output_path = output_path
        self.path: list[str] = []
        self.success: str | None = None
        self.root_tag: str | None = None
        self.messages: list[Message] = []
        self.attributes: dict[str, dict[str, str]] = {}
        self.text: list[str] = []
        self._message: tuple[str, str, list[str]] | None = None
        self._in_output = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.path.append(tag)
        if len(self.path) == 1:
            self.root_tag = tag
            self.success = attrib.get("success")
        elif tuple(self.path) == ("response", "messages", "message"):
            self._message = (attrib.get("key", ""), attrib.get("type", ""), [])
        elif tuple(self.path) == self.output_path:
            self._in_output = True
        self.attributes["/".join(self.path)] = dict(attrib)

    def end(self, tag: str) -> None:  # noqa: ARG002 - the parser's signature
        if self._message is not None and len(self.path) == 3:
            key, kind, parts = self._message
            self.messages.append(Message(key, "".join(parts), kind))
            self._message = None
        if tuple(self.path) == self.output_path:
            self._in_output = False
        self.path.pop()

    def data(self, text: str) -> None:
        if self._in_output:
            self.text.append(text)
        elif self._message is not None:
            self._message[2].append(text)

    def close(self) -> None:
        """Nothing to build: everything was handed on as it came."""


def iter_output_lines(
    chunks: Iterable[bytes],
    method: str,
    *,
    output_path: tuple[str, ...] = ("response", "output"),
    attributes: dict[str, dict[str, str]] | None = None,
) -> Iterator[str]:
    """The text of the output element, line by line (line ends kept, for :mod:`csv`), parsed as the bytes arrive.

    ``success`` is known from the root's start tag, before any output: a failed call yields nothing and raises once
    its messages are read. ``attributes`` (when given) receives each element's attributes by path.
    """
    target = _StreamingTarget(output_path)
    parser = SafeET.DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    pending = ""

    def feed(data: bytes | None) -> None:
        try:
            if data is None:
                parser.close()
            else:
                parser.feed(data)
        except DefusedXmlException as exc:
            raise _unsafe(method, exc) from None
        except ParseError as exc:
            raise _malformed(method, exc) from None
        if target.root_tag is not None and target.root_tag != "response":
            raise MalformedResponseError(f"{method}: the answer's root element is <{target.root_tag}>, not <response>")

    for chunk in chunks:
        feed(chunk)
        if not target.text or target.success != "true":
            continue
        text = pending + "".join(target.text)
        target.text.clear()
        cut = text.rfind("\n") + 1
        pending = text[cut:]
        if cut:
            yield from io.StringIO(text[:cut], newline="")
    feed(None)
    raise_for_failure(method, target.success, target.messages)
    text = pending + "".join(target.text)
    if text:
        yield from io.StringIO(text, newline="")
    if attributes is not None:
        attributes.update(target.attributes)
