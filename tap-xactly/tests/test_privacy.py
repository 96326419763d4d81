"""People's names and e-mail addresses: pseudonymized by default with a keyed, deterministic token."""

from __future__ import annotations

from typing import Any

from conftest import XcDatabase, run_tap

from harborline_singer_shared.pseudonymize import Pseudonymizer
from harborline_tap_xactly.streams import SQL_PERSONAL_DATA_FIELDS


def test_names_and_emails_are_tokens_by_default_and_the_same_in_every_run(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    first = run_tap(config, streams={"xc_user", "xc_participant"})
    second = run_tap(config, streams={"xc_user", "xc_participant"})
    reference = Pseudonymizer(config["pseudonymization_key"])
    for stream, fields in SQL_PERSONAL_DATA_FIELDS.items():
        records = first.records(stream)
        assert len(records) == 3
        assert records == second.records(stream)  # deterministic
        for field in fields:
            assert first.schema(stream)["properties"][field] == {"type": ["string", "null"]}
            assert all(r[field].startswith("hl1:1:") for r in records)
    clear = xc_db.sql('SELECT "EMAIL" FROM "XC_USER" ORDER BY "USER_ID"')
    assert [r["EMAIL"] for r in first.records("xc_user")] == [reference.token(e) for (e,) in clear]


def test_another_key_gives_other_tokens(config: dict[str, Any], xc_db: XcDatabase) -> None:
    one = run_tap(config, streams={"xc_user"}).records("xc_user")
    other = run_tap({**config, "pseudonymization_key": "another-key-of-enough-length-42"}, streams={"xc_user"})
    assert [r["EMAIL"] for r in one] != [r["EMAIL"] for r in other.records("xc_user")]
    assert [r["USER_ID"] for r in one] == [r["USER_ID"] for r in other.records("xc_user")]


def test_opting_out_loads_clear_values(config: dict[str, Any], xc_db: XcDatabase) -> None:
    records = run_tap({**config, "pseudonymize": {}}, streams={"xc_user"}).records("xc_user")
    assert [r["EMAIL"] for r in records] == ["person1@example.com", "person2@example.com", "person3@example.com"]
