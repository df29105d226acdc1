"""The supervisor's signal inbox (runtime/inbox.py): a signal is recorded, ends the sleep at once, is taken
once, and the handlers found before are put back."""
from __future__ import annotations

import os
import signal
import time

import pytest

from batchrun.runtime.inbox import SignalInbox

pytestmark = pytest.mark.timeout(30)


def test_a_signal_ends_the_sleep_and_is_taken_once_then_the_old_handler_is_back():
    before = signal.getsignal(signal.SIGUSR1)
    inbox = SignalInbox([signal.SIGUSR1])
    inbox.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        started = time.monotonic()
        inbox.wait(20)
        assert time.monotonic() - started < 10, "the signal must end the sleep, not its timeout"
        assert inbox.take() == [signal.SIGUSR1]
        assert inbox.take() == []
    finally:
        inbox.restore()
        inbox.close()
    assert signal.getsignal(signal.SIGUSR1) is before


def test_the_sleep_lasts_its_timeout_when_no_signal_comes():
    inbox = SignalInbox([signal.SIGUSR1])
    inbox.install()
    try:
        started = time.monotonic()
        inbox.wait(0.2)
        assert time.monotonic() - started >= 0.19
        assert inbox.take() == []
    finally:
        inbox.restore()
        inbox.close()
