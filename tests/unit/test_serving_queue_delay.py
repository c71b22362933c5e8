"""The queue-delay rule (serving.queue_delay): refuse once the delay stayed above the target for
the whole window; a sample at or below the target ends it. The timer on a real event loop."""

from __future__ import annotations

import asyncio
import time

from serving.queue_delay import QueueDelay


class Clock:
    def __init__(self) -> None:
        self.now = 0.0  # steps of powers of two: exact in floating point

    def __call__(self) -> float:
        return self.now


def test_a_standing_queue_is_refused_after_the_window_and_a_short_one_never() -> None:
    clock = Clock()
    delay = QueueDelay(target_s=0.025, window_s=0.125, clock=clock)
    delay.sample(0.2)  # a burst: above the target, not yet for a window
    clock.now += 0.0625
    delay.sample(0.1)
    assert not delay.overloaded()
    clock.now += 0.0625
    delay.sample(0.08)
    assert delay.overloaded()  # above for the whole window
    delay.sample(0.025)  # at the target: the queue drained
    assert not delay.overloaded()
    clock.now += 1.0
    assert not delay.overloaded()
    delay.sample(0.03)
    clock.now += 0.0625
    assert not delay.overloaded()  # the window starts again
    clock.now += 0.0625
    assert delay.overloaded()


def test_the_timer_measures_a_blocked_loop() -> None:
    async def scenario() -> tuple[float, bool, float]:
        delay = QueueDelay(target_s=0.025, window_s=0.05)
        delay.ensure_running()
        delay.ensure_running()  # one timer
        await asyncio.sleep(0.02)
        quiet = delay.delay_s
        for _ in range(3):  # the loop blocked 60 ms at a time, three times in a row
            time.sleep(0.06)
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
        blocked = delay.overloaded()
        measured = delay.delay_s
        delay.stop()
        return quiet, blocked, measured

    quiet, blocked, measured = asyncio.run(scenario())
    assert quiet < 0.025
    assert measured >= 0.05
    assert blocked
