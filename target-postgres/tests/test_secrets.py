"""Secrets never reach stderr (nor stdout): the password and the pseudonymization key, on every kind of run."""

from __future__ import annotations

import uuid

import pytest
from tp_helpers import SERVER, record_msg, schema_msg, state_msg

PASSWORD = "pw-" + uuid.uuid4().hex  # distinctive: any occurrence in the output is a leak
KEY = "pk-" + uuid.uuid4().hex + "-key"
SCHEMA = schema_msg("users", {"id": {"type": "integer"}, "email": {"type": "string"}}, ["id"])


@pytest.fixture
def secret_role(db):
    """A login role with a real password (the throwaway server trusts local connections, so it is not checked, but
    the target is configured with it exactly as in production)."""
    role = "tp_" + uuid.uuid4().hex[:10]
    db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    db.execute(f"GRANT CREATE ON DATABASE {db.dbname} TO {role}")
    return role


def settings(db, role, **extra):
    return {
        "user": role,
        "password": PASSWORD,
        "pseudonymize": {"users": ["email"]},
        "pseudonymization_key": KEY,
        **extra,
    }


def assert_no_secret(*texts):
    for text in texts:
        assert PASSWORD not in text
        assert KEY not in text


def test_successful_run(db, secret_role):
    result = db.cli([SCHEMA, record_msg("users", {"id": 1, "email": "a@example.com"}), state_msg({"x": 1})],
                    **settings(db, secret_role))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Committed 1 rows" in result.stderr  # the run did log (so the check below means something)
    assert_no_secret(result.stderr, result.stdout)
    owner = db.query("SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'users'", (db.schema,))
    assert owner == [(secret_role,)]
    assert db.rows("users", "email")[0][0].startswith("hl1:1:")


@pytest.mark.parametrize("args", [["--about"], ["--about", "--format", "json"], ["--about", "--format", "markdown"]])
def test_about(db, secret_role, args):
    result = db.cli("", args=args, **settings(db, secret_role))
    assert result.returncode == 0, result.stderr
    assert "pseudonymization_key" in result.stdout  # the setting is described...
    assert_no_secret(result.stderr, result.stdout)  # ...its value is not


@pytest.mark.parametrize(
    "case",
    ["malformed", "bad_record", "unreachable", "url_unreachable", "short_key", "unknown_path", "narrowing"],
)
def test_failing_runs(db, secret_role, case):
    config = settings(db, secret_role)
    messages: list = [SCHEMA, record_msg("users", {"id": 1, "email": "a@example.com"})]
    if case == "malformed":
        messages.append('{"type": "RECORD", "stream": "users", "record": {"id": 2, "email": "' + PASSWORD)
    elif case == "bad_record":
        messages.append(record_msg("users", {"id": KEY, "email": PASSWORD}))
    elif case == "unreachable":
        config["port"] = 1
    elif case == "url_unreachable":
        config["sqlalchemy_url"] = f"postgresql://{secret_role}:{PASSWORD}@127.0.0.1:1/{db.dbname}"
    elif case == "short_key":
        config["pseudonymization_key"] = KEY[:10]
    elif case == "unknown_path":
        config["pseudonymize"] = {"users": ["no_such_field"]}
    elif case == "narrowing":
        # (email is pseudonymized, so it is text whatever the tap says: narrow the key instead)
        messages.append(schema_msg("users", {"id": {"type": "boolean"}, "email": {"type": "integer"}}, ["id"]))
    result = db.cli(messages, **config)
    assert result.returncode != 0
    assert "ERROR" in result.stderr or "CRITICAL" in result.stderr
    assert "Traceback" not in result.stderr
    if case == "short_key":
        assert KEY[:10] not in result.stderr
    assert_no_secret(result.stderr, result.stdout)


def test_in_process_logs_do_not_show_secrets(db, secret_role, caplog):
    config = settings(db, secret_role)
    target = db.target(**config)
    target.logger.info("config is %s", target.config)  # a careless log line: redaction must still catch it
    db.run([SCHEMA, record_msg("users", {"id": 1, "email": "x@y.z"})], **config)
    assert_no_secret(caplog.text)
    assert SERVER.running


@pytest.mark.parametrize("field", ["password", "pseudonymization_key"])
def test_mistyped_secret_is_not_echoed_by_config_validation(db, secret_role, field):
    """A secret of the wrong JSON type makes config validation fail; the error must not quote the value."""
    config = settings(db, secret_role)
    config[field] = 987654321987654321 if field == "password" else [KEY]
    result = db.cli([SCHEMA], **config)
    assert result.returncode != 0
    assert f"config['{field}']" in result.stderr  # the error names the setting...
    assert "987654321987654321" not in result.stderr  # ...not its value
    assert_no_secret(result.stderr, result.stdout)


def test_secret_from_environment_is_masked_too(db, secret_role):
    config = settings(db, secret_role)
    del config["pseudonymization_key"]
    result = db.cli(
        [SCHEMA, record_msg("users", {"id": 1, "email": "e"})],
        args=["--config", "ENV"],
        env={"TARGET_POSTGRES_PSEUDONYMIZATION_KEY": KEY[:10]},  # too short: the error must not show it
        **config,
    )
    assert result.returncode != 0
    assert "too short" in result.stderr or "16 bytes" in result.stderr
    assert KEY[:10] not in result.stderr
