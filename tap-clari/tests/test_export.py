"""The export job end to end against the fake Clari: polling, failures, the vendor's quirks, exact values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import TODAY, run_tap
from fake_api import BIG_VALUE, FakeClari, Fault

from harborline_singer_shared.http import AuthenticationError
from harborline_singer_shared.retry import ManualClock
from harborline_tap_clari.periods import FiscalCalendar, parse_period
from harborline_tap_clari.tap import ExportsFailedError

STREAMS = ("forecast_entries", "users", "fields", "time_periods", "time_frames")
KEYS = {
    "forecast_entries": ("forecast_id", "time_period_id", "time_frame_id", "user_id", "field_id"),
    "users": ("user_id",),
    "fields": ("forecast_id", "field_id"),
    "time_periods": ("time_period_id",),
    "time_frames": ("time_period_id", "time_frame_id"),
}


def _failure_lines(error: BaseException | None, result: Any) -> list[str]:
    assert isinstance(error, ExportsFailedError)
    return [str(f) for f in result.tap.export_runner.failures.values()]


def test_jobs_go_scheduled_started_done_and_every_stream_is_filled(fake: FakeClari, config: dict) -> None:
    fake.polls_until_done = 4
    result = run_tap(config)

    # One export per forecast and period of the look-back (2024_Q4 and 2025_Q1), each run exactly once.
    posts = fake.calls("POST", "/export/forecast/")
    assert sorted((p.path_params["forecast_id"], p.json()["timePeriod"]) for p in posts) == [
        ("net_bookings", "2024_Q4"),
        ("net_bookings", "2025_Q1"),
        ("renewals", "2024_Q4"),
        ("renewals", "2025_Q1"),
    ]
    assert {job.status for job in fake.jobs.values()} == {"DONE"}
    assert all(job.polls == 4 for job in fake.jobs.values())
    assert len(fake.calls("GET", "/export/jobs/")) == 4 * 4 + 4  # polls + one results download each
    assert not fake.server.errors
    assert not fake.server.unmatched

    expected = 0
    for forecast in ("net_bookings", "renewals"):
        for period in ("2024_Q4", "2025_Q1"):
            expected += len(fake.document(forecast, period)["entries"])
    entries = result.records("forecast_entries")
    assert len(entries) == expected
    for stream in STREAMS:
        rows = result.records(stream)
        assert rows, stream
        keys = [tuple(r[k] for k in KEYS[stream]) for r in rows]
        assert len(keys) == len(set(keys)), f"duplicate keys in {stream}"
        assert all(None not in key for key in keys)
    assert len(result.records("users")) == fake.users
    assert {r["time_period_id"] for r in result.records("time_periods")} == {"2024_Q4", "2025_Q1"}
    assert len(result.records("fields")) == 2 * 4


def test_request_body_and_header(fake: FakeClari, config: dict) -> None:
    run_tap({**config, "currency": "EUR", "scope_id": "h1::MGR", "types_to_export": ["forecast", "crm_total"]})
    post = fake.calls("POST", "/export/forecast/")[0]
    assert post.json() == {
        "timePeriod": "2024_Q4",
        "includeHistorical": True,
        "typesToExport": ["forecast", "crm_total"],
        "exportFormat": "JSON",
        "currency": "EUR",
        "scopeId": "h1::MGR",
    }
    assert post.headers["apikey"] == config["api_key"]


def test_defaults_send_no_currency_or_scope(fake: FakeClari, config: dict) -> None:
    run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    (post,) = fake.calls("POST", "/export/forecast/")
    assert post.json() == {
        "timePeriod": "2025_Q1",
        "includeHistorical": True,
        "typesToExport": ["forecast", "quota", "forecast_updated", "adjustment"],
        "exportFormat": "JSON",
    }


def test_status_at_the_top_level_as_the_published_spec_shows(fake: FakeClari, config: dict) -> None:
    fake.status_envelope = "top"
    result = run_tap({**config, "time_periods": ["2025_Q1"]})
    assert len(result.records("forecast_entries")) == 2 * len(fake.document("net_bookings", "2025_Q1")["entries"])


def test_poll_interval_is_waited_between_polls(fake: FakeClari, config: dict) -> None:
    clock = ManualClock()
    fake.polls_until_done = 3
    run_tap(
        {**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"], "poll_interval_seconds": 7.5},
        clock=clock,
    )
    assert clock.sleeps == [7.5, 7.5]


@pytest.mark.parametrize("final", ["FAILED", "CANCELLED", "ABORTED"])
def test_a_failed_or_cancelled_job_is_reported_and_the_others_go_on(fake: FakeClari, config: dict, final: str) -> None:
    fake.job_scripts[("renewals", "2024_Q4")] = ["SCHEDULED", "STARTED", final]
    result = run_tap(config, expect_error=True)

    (line,) = _failure_lines(result.error, result)
    job_id = next(j.job_id for j in fake.jobs.values() if (j.forecast_id, j.period) == ("renewals", "2024_Q4"))
    assert "forecast 'renewals'" in line
    assert "period '2024_Q4'" in line
    assert f"job '{job_id}'" in line
    assert final in line
    # Every other export was emitted in full, in every stream.
    periods = {(r["forecast_id"], r["time_period_id"]) for r in result.records("forecast_entries")}
    assert periods == {("net_bookings", "2024_Q4"), ("net_bookings", "2025_Q1"), ("renewals", "2025_Q1")}
    assert {r["forecast_id"] for r in result.records("fields")} == {"net_bookings", "renewals"}
    assert "1 of 4 Clari export(s) failed" in str(result.error)
    # The failed export is not retried by the streams that read its arrays.
    assert len([p for p in fake.calls("POST") if p.path.endswith("/renewals")]) == 2


def test_a_job_that_never_finishes_is_cancelled_after_max_wait(fake: FakeClari, config: dict) -> None:
    fake.never_finish.add(("net_bookings", "2025_Q1"))
    clock = ManualClock()
    result = run_tap(
        {**config, "forecast_ids": ["net_bookings"], "poll_interval_seconds": 15, "max_wait_seconds": 60},
        clock=clock,
        expect_error=True,
    )

    (line,) = _failure_lines(result.error, result)
    job = next(j for j in fake.jobs.values() if j.period == "2025_Q1")
    patches = fake.calls("PATCH", f"/export/jobs/{job.job_id}")
    assert [p.json() for p in patches] == [{"type": "CANCEL"}]
    assert fake.cancelled == [job.job_id]
    assert "max_wait_seconds (60 s)" in line
    assert "STARTED" in line
    assert job.job_id in line
    assert "period '2025_Q1'" in line
    assert "cancelled" in line
    # Waited exactly up to the bound: 4 sleeps of 15 s for this job and 2 for the one before it (DONE on poll 3).
    assert clock.sleeps == [15.0, 15.0] + [15.0] * 4
    assert job.polls == 5
    assert {r["time_period_id"] for r in result.records("forecast_entries")} == {"2024_Q4"}


def test_a_tiny_max_wait_with_a_stuck_job_cancels_at_once(fake: FakeClari, config: dict) -> None:
    fake.never_finish.add(("net_bookings", "2025_Q1"))
    result = run_tap(
        {**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"], "max_wait_seconds": 0},
        expect_error=True,
    )
    assert len(fake.cancelled) == 1
    assert "no DONE within max_wait_seconds" in str(_failure_lines(result.error, result))


def test_fallback_quarter_emits_nothing_from_that_export(fake: FakeClari, config: dict) -> None:
    # Clari answers a period it does not know with the current quarter, silently.
    fake.unknown_periods.add("2019_Q2")
    result = run_tap(
        {**config, "forecast_ids": ["net_bookings"], "time_periods": ["2019_Q2", "2025_Q1"]}, expect_error=True
    )
    (line,) = _failure_lines(result.error, result)
    assert "forecast 'net_bookings'" in line
    assert "asked for period '2019_Q2'" in line
    assert "returned '2025_Q1'" in line
    for stream in ("forecast_entries", "time_frames", "time_periods"):
        assert {r["time_period_id"] for r in result.records(stream)} == {"2025_Q1"}, stream


def test_entries_of_another_period_emit_nothing(fake: FakeClari, config: dict) -> None:
    document = fake.document("net_bookings", "2025_Q1")
    document["entries"][-1]["timePeriodId"] = "2024_Q4"
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]}, expect_error=True)
    assert "entries are of period '2024_Q4'" in _failure_lines(result.error, result)[0]
    assert result.records("forecast_entries") == []


def test_an_unknown_forecast_id_fails_that_export_only(fake: FakeClari, config: dict) -> None:
    result = run_tap({**config, "forecast_ids": ["no_such_tab", "net_bookings"]}, expect_error=True)
    lines = _failure_lines(result.error, result)
    assert len(lines) == 2  # both periods of the unknown forecast
    for line in lines:
        assert "forecast 'no_such_tab'" in line
        assert "HTTP 400" in line
        assert "no_such_forecast_config" in line
    assert {r["forecast_id"] for r in result.records("forecast_entries")} == {"net_bookings"}
    assert "2 of 4" in str(result.error)


def test_429_with_retry_after_on_the_export_post_is_waited_out(fake: FakeClari, config: dict) -> None:
    fake.inject(Fault("POST", "/export/forecast/", 429, {"Retry-After": "20"}, {"error": "rate_limited"}, times=2))
    clock = ManualClock()
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]}, clock=clock)
    assert clock.sleeps == [20.0, 20.0]
    assert len(fake.calls("POST")) == 3
    assert len(result.records("forecast_entries")) == len(fake.document("net_bookings", "2025_Q1")["entries"])


def test_a_5xx_while_polling_is_retried(fake: FakeClari, config: dict) -> None:
    fake.inject(Fault("GET", "/export/jobs/", 503, {}, {"error": "unavailable"}, times=2))
    clock = ManualClock()
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]}, clock=clock)
    assert len(clock.sleeps) == 2  # the retry policy's two backoff waits; poll_interval_seconds is 0
    assert len(result.records("forecast_entries")) == len(fake.document("net_bookings", "2025_Q1")["entries"])


def test_a_5xx_that_never_ends_fails_that_export_only(fake: FakeClari, config: dict) -> None:
    fake.inject(Fault("GET", "/export/jobs/job000001", 502, {}, "bad gateway", times=100))
    result = run_tap({**config, "forecast_ids": ["net_bookings"]}, expect_error=True)
    (line,) = _failure_lines(result.error, result)
    assert "period '2024_Q4'" in line
    assert "502" in line
    assert {r["time_period_id"] for r in result.records("forecast_entries")} == {"2025_Q1"}


def test_results_that_are_not_json_fail_that_export_only(fake: FakeClari, config: dict) -> None:
    fake.raw_results[("renewals", "2025_Q1")] = b"<html><body>Service unavailable</body></html>"
    result = run_tap(config, expect_error=True)
    (line,) = _failure_lines(result.error, result)
    assert "forecast 'renewals', period '2025_Q1'" in line
    assert "not JSON" in line
    assert len({(r["forecast_id"], r["time_period_id"]) for r in result.records("forecast_entries")}) == 3


def test_values_that_lose_precision_as_floats_are_emitted_exactly(fake: FakeClari, config: dict) -> None:
    assert float(BIG_VALUE) != BIG_VALUE  # the premise: a float cannot hold it
    document = fake.document("net_bookings", "2025_Q1")
    document["entries"][1]["quotaValue"] = Decimal("0.1000000000000000055511151231257827")
    document["entries"][2]["adjustmentValue"] = Decimal("-98765432109876543210.12")
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    # The text on stdout carries every digit, as a JSON number.
    assert '"forecast_value":12345678901234567.89' in result.stdout
    assert '"quota_value":0.1000000000000000055511151231257827' in result.stdout
    assert '"adjustment_value":-98765432109876543210.12' in result.stdout
    schema = result.schema("forecast_entries")
    for name in ("forecast_value", "quota_value", "adjustment_value"):
        assert "number" in schema["properties"][name]["type"]


def test_a_week_that_starts_before_its_quarter_is_kept(fake: FakeClari, config: dict) -> None:
    # 2025_Q1 starts on Wednesday 2025-01-01; its first week starts on Monday 2024-12-30.
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    first_day = FiscalCalendar().first_day(parse_period("2025_Q1"))
    early = [f for f in result.records("time_frames") if f["start_date"] < first_day.isoformat()]
    assert [f["start_date"] for f in early] == ["2024-12-30"]
    week = early[0]["time_frame_id"]
    assert any(e["time_frame_id"] == week for e in result.records("forecast_entries"))


def test_week_ids_are_reused_across_quarters_and_keyed_by_period(fake: FakeClari, config: dict) -> None:
    result = run_tap({**config, "forecast_ids": ["net_bookings"]})
    frames = result.records("time_frames")
    by_period: dict[str, set[str]] = {}
    for frame in frames:
        by_period.setdefault(frame["time_period_id"], set()).add(frame["time_frame_id"])
    assert by_period["2024_Q4"] & by_period["2025_Q1"]  # the same ids in both quarters ...
    assert len({(f["time_period_id"], f["time_frame_id"]) for f in frames}) == len(frames)  # ... distinct keys
    w01 = {f["time_period_id"]: f["start_date"] for f in frames if f["time_frame_id"] == "w01"}
    assert w01 == {"2024_Q4": "2024-09-30", "2025_Q1": "2024-12-30"}


def test_weeks_in_shuffled_order_are_all_emitted(fake: FakeClari, config: dict) -> None:
    document = fake.document("net_bookings", "2025_Q1")
    served = [f["timeFrameId"] for f in document["timeFrames"]]
    assert served != sorted(served)
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    assert sorted(f["time_frame_id"] for f in result.records("time_frames")) == sorted(served)


def test_a_rerun_after_a_quota_change_and_a_late_update_emits_both(fake: FakeClari, config: dict) -> None:
    config = {**config, "forecast_ids": ["net_bookings"]}
    first = run_tap(config)
    state = next(m["value"] for m in reversed(first.messages) if m["type"] == "STATE")

    # Quota changes without any marker; a forecast value of an early week of the previous quarter changes late.
    old = fake.document("net_bookings", "2024_Q4")["entries"]
    quota_row = next(e for e in old if e["fieldId"] == "quota")
    quota_row["quotaValue"] = Decimal("999999.99")
    late_row = next(e for e in old if e["timeFrameId"] == "w01" and e["fieldId"] == "forecast_call")
    late_row["forecastValue"] = Decimal("4242.42")
    late_row["isUpdated"] = True

    second = run_tap(config, state=state, today=TODAY)
    assert len(second.records("forecast_entries")) == len(first.records("forecast_entries"))

    def find(result: Any, row: dict) -> dict:
        return next(
            r
            for r in result.records("forecast_entries")
            if (r["time_period_id"], r["time_frame_id"], r["user_id"], r["field_id"])
            == (row["timePeriodId"], row["timeFrameId"], row["userId"], row["fieldId"])
        )

    assert find(second, quota_row)["quota_value"] == pytest.approx(999999.99)
    assert '"quota_value":999999.99' in second.stdout
    assert find(second, late_row)["forecast_value"] == pytest.approx(4242.42)
    assert find(second, late_row)["is_updated"] is True
    # Whatever the STATE held, the whole look-back was exported again.
    assert len(fake.calls("POST")) == 4


def test_unknown_entry_keys_go_into_extra_and_updated_on_is_utc(fake: FakeClari, config: dict) -> None:
    document = fake.document("net_bookings", "2025_Q1")
    row = document["entries"][0]
    row["updatedOn"] = 1735689600123  # 2025-01-01T00:00:00.123Z
    row["someNewKey"] = {"nested": [1, 2]}
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    record = next(
        r
        for r in result.records("forecast_entries")
        if (r["user_id"], r["time_frame_id"], r["field_id"]) == (row["userId"], row["timeFrameId"], row["fieldId"])
    )
    assert record["updated_on"] == "2025-01-01T00:00:00.123+00:00"
    assert record["extra"]["someNewKey"] == {"nested": [1, 2]}
    with_crm = [r for r in result.records("forecast_entries") if r["field_id"] == "best_case"]
    assert with_crm
    assert all("crmTotalValue" in r["extra"] for r in with_crm)
    assert not any("crmTotalValue" in r for r in with_crm)


def test_only_the_lookup_streams_selected_still_runs_each_export_once(fake: FakeClari, config: dict) -> None:
    result = run_tap(config, streams={"users", "time_frames", "fields"})
    assert len(fake.calls("POST")) == 4
    assert result.records("forecast_entries") == []
    assert len(result.records("users")) == fake.users


def test_401_is_one_clear_error_naming_api_key(fake: FakeClari, config: dict) -> None:
    result = run_tap({**config, "api_key": "wrong-key-123456"}, expect_error=True)
    assert isinstance(result.error, AuthenticationError)
    message = str(result.error)
    assert "HTTP 401" in message
    assert "`api_key`" in message
    assert "wrong-key-123456" not in message
    assert len(fake.calls("POST")) == 1  # a wrong key stops the run: no point trying the other exports


def test_results_of_another_shape_fail_that_export_instead_of_emitting_nothing(fake: FakeClari, config: dict) -> None:
    fake.raw_results[("net_bookings", "2025_Q1")] = b'{"data": {"entries": []}}'
    result = run_tap({**config, "forecast_ids": ["net_bookings"]}, expect_error=True)
    (line,) = _failure_lines(result.error, result)
    assert "period '2025_Q1'" in line
    assert "none of entries" in line


def test_an_export_answer_without_a_job_id_fails_that_export(fake: FakeClari, config: dict) -> None:
    fake.inject(Fault("POST", "/export/forecast/net_bookings", 200, {}, {"status": "queued"}))
    result = run_tap({**config, "forecast_ids": ["net_bookings"]}, expect_error=True)
    (line,) = _failure_lines(result.error, result)
    assert "period '2024_Q4'" in line
    assert "no jobId" in line
    assert {r["time_period_id"] for r in result.records("forecast_entries")} == {"2025_Q1"}
