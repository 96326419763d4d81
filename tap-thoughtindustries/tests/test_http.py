"""Throttling, retries, pacing, authentication errors, secrets and pseudonymized output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_tap
from fake_api import FakeThoughtIndustries

from harborline_singer_shared.retry import ManualClock
from harborline_singer_shared.testing.taps import run_plugin_cli
from harborline_tap_thoughtindustries.streams import EVENT_STREAMS, PERSONAL_DATA_FIELDS

SECRET_KEY = "ti-SECRET-api-key-0123456789abcdef"
SECRET_PSEUDO_KEY = "pseudo-SECRET-key-fedcba9876543210"


def test_429_honours_retry_after(fake_api, base_config):
    fake_api.fail_next(
        429,
        headers={"Retry-After": "7"},
        body=b'{"error":"Too Many Requests"}',
        path_contains="/events/login",
    )
    clock = ManualClock()
    result = run_tap(base_config, streams=["logins"], clock=clock)
    assert 7.0 in clock.sleeps
    assert len(result.records("logins")) == len(fake_api.dataset.event_ms["login"])
    statuses = [r.status for r in fake_api.event_requests("login")]
    assert statuses[:2] == [429, 200]


def test_429_with_retry_after_beyond_the_budget_fails_at_once(fake_api, base_config):
    fake_api.fail_next(429, headers={"Retry-After": "3600"}, path_contains="/events/login")
    config = {**base_config, "max_retry_elapsed_seconds": 60}
    result = run_tap(config, streams=["logins"], clock=ManualClock(), expect_error=True)
    assert "Retry-After" in str(result.error)
    assert len(fake_api.event_requests("login")) == 1


def test_5xx_is_retried_with_backoff(fake_api, base_config):
    fake_api.fail_next(503, count=2, path_contains="/events/visit")
    clock = ManualClock()
    result = run_tap(base_config, streams=["visits"], clock=clock)
    backoff = [s for s in clock.sleeps if s > 0.001]  # the rest are the (tiny) pacing waits
    assert len(backoff) == 2  # two backoff waits, no Retry-After given
    assert len(result.records("visits")) == len(fake_api.dataset.event_ms["visit"])


def test_5xx_that_persists_fails_after_max_retries(fake_api, base_config):
    fake_api.fail_next(500, count=100, path_contains="/events/visit")
    result = run_tap(base_config, streams=["visits"], clock=ManualClock(), expect_error=True)
    assert "after 3 attempt(s)" in str(result.error)
    assert len(fake_api.event_requests("visit")) == 3


def test_timeout_is_retried(fake_api, base_config):
    # Held for up to 120 s, far beyond the 5 s timeout, but only until the client closes the connection: the test
    # waits on the client giving up, and the other requests keep a timeout a loaded machine can meet.
    fake_api.delay_next(120, path_contains="/events/courseCompletion")
    assert base_config["request_timeout"] == 5
    result = run_tap(base_config, streams=["course_completions"], clock=ManualClock())
    assert len(result.records("course_completions")) == len(fake_api.dataset.event_ms["courseCompletion"])
    # the timed-out request and its retry both reached the server
    first_window = fake_api.event_requests("courseCompletion")[:2]
    assert first_window[0].params == first_window[1].params


def test_pacing_keeps_under_requests_per_minute(fake_api, base_config):
    """With a fake clock: requests are evenly spaced and no minute holds more than allowed."""
    clock = ManualClock()
    config = {**base_config, "requests_per_minute": 30}
    run_tap(config, streams=["logins", "visits", "users"], clock=clock)
    requests = len(fake_api.requests)
    assert requests > 30
    # the first request goes at once, every later one waits exactly 2 s (the clock only moves
    # when the pacer sleeps, so each sleep is one full interval)
    assert clock.sleeps == pytest.approx([2.0] * (requests - 1))
    starts = [0.0]
    for wait in clock.sleeps:
        starts.append(starts[-1] + wait)
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 60]
        assert len(in_window) <= 30


def test_default_pacing_is_the_vendor_event_limit(fake_api, base_config):
    clock = ManualClock()
    config = {k: v for k, v in base_config.items() if k != "requests_per_minute"}
    run_tap(config, streams=["course_certificates"], clock=clock)
    assert clock.sleeps
    assert clock.sleeps == pytest.approx([0.6] * len(clock.sleeps))  # 100 per minute


def _write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli("harborline_tap_thoughtindustries", list(args), timeout=120)


def test_401_names_the_setting_and_never_the_key(tmp_path):
    with FakeThoughtIndustries(users=5, events=50, days=1) as api:
        config = {
            "api_url": api.url,
            "api_key": SECRET_KEY,  # not the fake's key: every request is rejected
            "start_date": api.dataset.start.isoformat(),
            "end_date": api.dataset.end.isoformat(),
            "pseudonymize": {"users": ["email"]},
            "pseudonymization_key": SECRET_PSEUDO_KEY,
        }
        proc = _cli("--config", str(_write_config(tmp_path, config)))
        assert len(api.requests) == 1  # a 401 is not retried
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Authentication failed: HTTP 401" in output
    assert "`api_key`" in output
    assert SECRET_KEY not in output
    assert SECRET_PSEUDO_KEY not in output


def test_cli_never_prints_secrets(tmp_path):
    with FakeThoughtIndustries(users=20, events=300, days=1, api_key=SECRET_KEY) as api:
        config = {
            "api_url": api.url,
            "api_key": SECRET_KEY,
            "start_date": api.dataset.start.isoformat(),
            "end_date": api.dataset.end.isoformat(),
            "requests_per_minute": 100_000,
            "pseudonymize": PERSONAL_DATA_FIELDS,
            "pseudonymization_key": SECRET_PSEUDO_KEY,
        }
        path = str(_write_config(tmp_path, config))
        runs = [
            _cli("--about", "--format=json"),
            _cli("--config", path, "--about"),
            _cli("--config", path, "--discover"),
            _cli("--config", path),
        ]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert SECRET_KEY not in proc.stdout + proc.stderr
        assert SECRET_PSEUDO_KEY not in proc.stdout + proc.stderr
    assert '"type":"RECORD"' in runs[-1].stdout.replace(" ", "")


def test_pseudonymized_output(fake_api, base_config):
    config = {
        **base_config,
        "pseudonymize": PERSONAL_DATA_FIELDS,
        "pseudonymization_key": SECRET_PSEUDO_KEY,
    }
    streams = ["users", "logins", "course_purchases", "assessment_attempts", "email_captures"]
    result = run_tap(config, streams=streams)
    text = json.dumps([m for m in result.messages if m["type"] == "RECORD"])
    assert "@example." not in text  # no e-mail address left anywhere
    users = result.records("users")
    first_names = {u["firstName"] for u in fake_api.dataset.users}
    assert not first_names & {u["firstName"] for u in users}
    assert all(u["email"].startswith("hl1:1:") for u in users)
    # the same person gets the same token in every stream, so joins still work
    token_by_id = {u["id"]: u["email"] for u in users}
    for login in result.records("logins"):
        assert login["user"] == token_by_id[login["userDetail"]["id"]]
    for attempt in result.records("assessment_attempts"):
        assert attempt["user"]["email"] == token_by_id[attempt["user"]["id"]]
    # the SCHEMA messages announce the tokens as strings
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    assert schemas["users"]["properties"]["email"]["type"] == ["string", "null"]
    # event keys come from the clear values, so they do not change when pseudonymization is on
    plain = run_tap(base_config, streams=["logins"])
    assert sorted(r["event_key"] for r in plain.records("logins")) == sorted(
        r["event_key"] for r in result.records("logins")
    )


def test_pseudonymization_config_covers_every_personal_field():
    """Every event stream's e-mail (`user`) is in the documented config."""
    for cls in EVENT_STREAMS:
        assert "user" in PERSONAL_DATA_FIELDS[cls.name]


def test_pseudonymize_without_a_key_fails_before_reading(fake_api, base_config, monkeypatch):
    monkeypatch.delenv("HARBORLINE_PSEUDONYMIZATION_KEY", raising=False)
    config = {**base_config, "pseudonymize": {"users": ["email"]}}
    with pytest.raises(Exception, match="pseudonymization_key"):
        run_tap(config, streams=["users"])
    assert fake_api.requests == []
