"""The wire format: calls built by an XML library, answers parsed safely from bytes, exportData read as it arrives."""

from __future__ import annotations

import csv

import pytest
from defusedxml.ElementTree import fromstring
from fake_api import INTERNAL_ENTITY, XML_BOMB

from harborline_tap_adaptive.xmlapi import (
    AdaptiveAuthenticationError,
    AdaptiveCallError,
    Credentials,
    MalformedResponseError,
    UnsafeXMLError,
    build_call,
    element,
    iter_output_lines,
    parse_response,
)

NASTY = "a&b <c> \"d\" 'e' ]]> ü"


def test_call_escapes_every_character_xml_cares_about() -> None:
    credentials = Credentials(login="me@example.com", password=NASTY, caller_name="t", instance_code="I&1")
    body = build_call("exportData", credentials, [element("version", {"name": NASTY, "isDefault": False})])
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = fromstring(body)
    assert root.tag == "call"
    assert root.get("method") == "exportData"
    assert root.get("callerName") == "t"
    assert root.find("credentials").attrib == {"login": "me@example.com", "password": NASTY, "instanceCode": "I&1"}
    assert root.find("version").attrib == {"name": NASTY, "isDefault": "false"}
    assert NASTY not in repr(credentials)


def test_instance_code_is_left_out_when_unset() -> None:
    root = fromstring(build_call("exportLevels", Credentials("u", "p", "c")))
    assert "instanceCode" not in root.find("credentials").attrib


def test_the_declared_encoding_wins() -> None:
    body = (
        '<?xml version="1.0" encoding="windows-1252"?>'
        '<response success="true"><output><x name="5 €"/></output></response>'
    )
    output = parse_response(body.encode("windows-1252"), "exportX")
    assert output is not None
    assert output.find("x").get("name") == "5 €"


@pytest.mark.parametrize("document", [XML_BOMB, INTERNAL_ENTITY], ids=["bomb", "internal-entity"])
def test_dtds_and_entities_are_refused_naming_the_method(document: bytes) -> None:
    with pytest.raises(UnsafeXMLError, match=r"^exportAccounts: the response declares a DTD or an entity"):
        parse_response(document, "exportAccounts")
    with pytest.raises(UnsafeXMLError, match=r"^exportData: "):
        list(iter_output_lines([document], "exportData"))


def test_not_xml_and_not_a_response_are_clear_errors() -> None:
    with pytest.raises(MalformedResponseError, match="exportLevels: the response is not well-formed XML"):
        parse_response(b"<html><body>Maintenance", "exportLevels")
    with pytest.raises(MalformedResponseError, match=r"root element is <html>"):
        parse_response(b"<html/>", "exportLevels")


def test_success_false_lists_every_message() -> None:
    body = (
        b'<response success="false"><messages><message key="error-a" type="ERROR">First  problem</message>'
        b'<message key="error-b">Second</message></messages></response>'
    )
    with pytest.raises(AdaptiveCallError) as caught:
        parse_response(body, "exportRoles")
    assert (
        str(caught.value)
        == 'exportRoles failed: Adaptive answered success="false": [error-a] First problem; [error-b] Second'
    )


@pytest.mark.parametrize("key", ["error-authentication-failure", "error-invalid-instance-code"])
def test_refused_credentials_name_the_settings(key: str) -> None:
    body = f'<response success="false"><messages><message key="{key}">No</message></messages></response>'.encode()
    with pytest.raises(AdaptiveAuthenticationError) as caught:
        parse_response(body, "exportUsers")
    message = str(caught.value)
    assert message.startswith(f"Authentication failed for exportUsers: Adaptive answered [{key}] No.")
    assert "`username`, `password` and `instance_code`" in message


def _document(csv_text: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><response success="true"><output><![CDATA['
        + csv_text
        + "]]></output></response>"
    ).encode()


CSV = 'Account Name,Account Code\r\n"Multi\r\nline, ""quoted""",A1\r\nÜber,B2\r\nlast,C3'


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_output_lines_survive_any_chunking(size: int) -> None:
    document = _document(CSV)
    chunks = [document[i : i + size] for i in range(0, len(document), size)]
    rows = list(csv.reader(iter_output_lines(chunks, "exportData")))
    # XML turns every line end into \n when it parses, inside CDATA too.
    assert rows == [["Account Name", "Account Code"], ['Multi\nline, "quoted"', "A1"], ["Über", "B2"], ["last", "C3"]]


def test_output_lines_come_before_the_answer_is_complete() -> None:
    # Bigger than expat's 8 KiB text buffer: text is handed on when the buffer fills, not when the answer ends.
    document = _document("h\r\n" + "row\r\n" * 20_000)
    half = len(document) // 2
    fed: list[int] = []

    def chunks() -> object:
        fed.append(1)
        yield document[:half]
        fed.append(2)
        yield document[half:]

    lines = iter_output_lines(chunks(), "exportData")  # type: ignore[arg-type]
    assert next(lines) == "h\n"
    assert fed == [1]


def test_a_streamed_failure_yields_nothing_and_raises_with_the_messages() -> None:
    body = (
        b'<response success="false"><messages><message key="error-version">No version "X"</message></messages>'
        b"</response>"
    )
    with pytest.raises(AdaptiveCallError, match=r'\[error-version\] No version "X"'):
        list(iter_output_lines([body[:10], body[10:]], "exportData"))


def test_a_truncated_answer_is_an_error_not_a_short_export() -> None:
    document = _document("h\r\nrow\r\n")
    with pytest.raises(MalformedResponseError, match="exportData: the response is not well-formed XML"):
        list(iter_output_lines([document[:-20]], "exportData"))
