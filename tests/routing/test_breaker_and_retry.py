from __future__ import annotations

from core.routing.breaker import BreakerSettings, MemoryBreaker
from core.routing.clock import ManualClock
from core.routing.retry import RetryPolicy, retry_after_s


async def test_consecutive_failures_open_then_half_open_probe_closes() -> None:
    clock = ManualClock()
    breaker = MemoryBreaker(BreakerSettings(failure_threshold=3, cooldown_s=10), clock)
    for _ in range(2):
        await breaker.record("t", 500)
    assert await breaker.allow("t")
    await breaker.record("t", 503)
    assert not await breaker.allow("t")
    assert breaker.snapshot() == {"t": "open"}

    clock.advance(10)
    assert await breaker.allow("t")  # one probe
    assert not await breaker.allow("t")  # and only one
    await breaker.record("t", 200)
    assert breaker.snapshot() == {}
    assert await breaker.allow("t")


async def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = ManualClock()
    breaker = MemoryBreaker(BreakerSettings(failure_threshold=1, cooldown_s=10), clock)
    await breaker.record("t", 429)
    clock.advance(10)
    assert await breaker.allow("t")
    await breaker.record("t", 500)
    clock.advance(9)
    assert not await breaker.allow("t")
    clock.advance(1)
    assert await breaker.allow("t")


async def test_error_rate_over_the_window_opens() -> None:
    clock = ManualClock()
    breaker = MemoryBreaker(BreakerSettings(failure_threshold=100, error_rate_threshold=0.5, min_calls=10,
                                            window_s=60), clock)
    for i in range(9):
        await breaker.record("t", 200 if i % 2 else 500)  # alternating: never 2 consecutive failures
    assert not breaker.is_open("t")  # 9 calls: under min_calls
    await breaker.record("t", 200)
    assert not breaker.is_open("t")  # 5 of 10 failed, but a success cannot open a circuit
    await breaker.record("t", 500)
    assert breaker.is_open("t")  # 6 of 11


async def test_client_errors_do_not_count_and_old_calls_expire() -> None:
    clock = ManualClock()
    breaker = MemoryBreaker(BreakerSettings(failure_threshold=100, min_calls=4, window_s=10), clock)
    for _ in range(10):
        await breaker.record("t", 400)
    assert breaker.snapshot() == {}
    for _ in range(3):
        await breaker.record("t", 500)
    clock.advance(11)
    await breaker.record("t", 200)
    await breaker.record("t", 500)
    assert breaker.snapshot() == {}  # the three old failures left the window


def test_backoff_is_exponential_with_equal_jitter_and_capped() -> None:
    policy = RetryPolicy(attempts=10, max_delay_s=30)
    assert [policy.backoff_s(i, lambda: 0.0) for i in range(6)] == [0.5, 1, 2, 4, 8, 15]
    assert [policy.backoff_s(i, lambda: 1.0) for i in range(6)] == [1, 2, 4, 8, 16, 30]


def test_retry_after_forms() -> None:
    assert retry_after_s([("Retry-After-Ms", "250")], 0) == 0.25
    assert retry_after_s([("x-ms-retry-after-ms", "1000"), ("retry-after", "9")], 0) == 1.0
    assert retry_after_s([("retry-after", "3")], 0) == 3.0
    assert retry_after_s([("retry-after", "Thu, 01 Jan 1970 00:01:40 GMT")], 40.0) == 60.0
    assert retry_after_s([("retry-after", "soon")], 0) is None
    assert retry_after_s([], 0) is None
