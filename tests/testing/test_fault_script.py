"""Fault scripts and time windows: by count and by the emulator's (fake) clock, never sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azure_imds_credential.testing import Fault, ImdsEmulator, Step
from tests.testing.helpers import SettableClock, fetch


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def imds(clock: SettableClock) -> Iterator[ImdsEmulator]:
    with ImdsEmulator(clock=clock) as emulator:
        yield emulator


def statuses(imds: ImdsEmulator, count: int) -> list[int]:
    return [fetch(imds.port).status for _ in range(count)]


def test_during_answers_fault_until_window_ends_when_clock_moves(
    imds: ImdsEmulator, clock: SettableClock
) -> None:
    imds.during(16, Fault.status(410))
    assert statuses(imds, 3) == [410, 410, 410]  # count does not end a time window
    clock.now += 15.9
    assert fetch(imds.port).status == 410
    clock.now += 0.1
    assert statuses(imds, 2) == [200, 200]
    assert [r.fault for r in imds.token_requests] == ["status"] * 4 + [None, None]


def test_during_waits_for_start_when_after_is_given(imds: ImdsEmulator, clock: SettableClock) -> None:
    imds.during(5, Fault.status(503), after=10)
    assert fetch(imds.port).status == 200
    clock.now += 10
    assert fetch(imds.port).status == 503
    clock.now += 5
    assert fetch(imds.port).status == 200


def test_script_plays_steps_in_order_when_counts_and_times_mix(
    imds: ImdsEmulator, clock: SettableClock
) -> None:
    imds.script(
        Fault.status(410).for_seconds(10),
        Fault.retry_after(429, 2).times(2),
        Step.ok(times=1),
        Fault.status(500).forever(),
    )
    assert statuses(imds, 2) == [410, 410]
    clock.now += 10
    assert statuses(imds, 5) == [429, 429, 200, 500, 500]
    clock.now += 10_000
    assert fetch(imds.port).status == 500  # a forever step never ends


def test_script_step_ends_at_count_or_time_when_both_given(imds: ImdsEmulator, clock: SettableClock) -> None:
    imds.script(Step(Fault.status(503), times=3, seconds=5))
    assert statuses(imds, 1) == [503]
    clock.now += 5  # time runs out before the count does
    assert statuses(imds, 1) == [200]
    imds.script(Step(Fault.status(503), times=2, seconds=5))
    assert statuses(imds, 3) == [503, 503, 200]  # the count runs out first


def test_script_next_step_starts_when_previous_window_ended_when_time_jumps(
    imds: ImdsEmulator, clock: SettableClock
) -> None:
    # 0-10 s: 410, 10-20 s: 503. A request at 15 s (nothing in between) gets 503, not 410
    # and not "503 for 10 s from now".
    imds.script(Fault.status(410).for_seconds(10), Fault.status(503).for_seconds(10))
    clock.now += 15
    assert fetch(imds.port).status == 503
    clock.now += 5
    assert fetch(imds.port).status == 200


def test_fault_precedence_is_queue_then_scripts_then_always_when_all_set(
    imds: ImdsEmulator, clock: SettableClock
) -> None:
    imds.always(Fault.status(500))
    imds.during(10, Fault.status(410))
    imds.during(20, Fault.status(404))  # overlaps: the earlier-added window decides
    imds.push(Fault.status(429))
    assert statuses(imds, 2) == [429, 410]
    clock.now += 10
    assert fetch(imds.port).status == 404
    clock.now += 10
    assert fetch(imds.port).status == 500


def test_ok_step_overrides_always_when_in_force(imds: ImdsEmulator) -> None:
    imds.always(Fault.status(500))
    imds.script(Step.ok(times=1))
    assert statuses(imds, 2) == [200, 500]


def test_clear_faults_forgets_scripts_and_windows_when_called(imds: ImdsEmulator) -> None:
    imds.during(60, Fault.status(410))
    imds.script(Fault.status(503).forever())
    imds.clear_faults()
    assert fetch(imds.port).status == 200


def test_windows_ignore_requests_without_metadata_when_counting(imds: ImdsEmulator) -> None:
    imds.script(Fault.status(503).times(1))
    assert fetch(imds.port, headers={}).status == 400  # refused before any fault applies
    assert statuses(imds, 2) == [503, 200]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Step(None, times=0), "times"),
        (lambda: Step(None, seconds=0), "seconds"),
        (lambda: Fault.reset().for_seconds(-1), "seconds"),
    ],
)
def test_step_raises_value_error_when_limits_are_not_positive(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_during_raises_value_error_when_after_is_negative(imds: ImdsEmulator) -> None:
    with pytest.raises(ValueError, match="after"):
        imds.during(1, Fault.reset(), after=-1)
