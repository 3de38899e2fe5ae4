"""Wall-clock budgets for derivations, so that no strategy can hang.

Budgets nest (a simplification may get a few seconds inside a derivation's budget). In the main
thread an interval timer, armed for the nearest deadline, interrupts even a long SymPy call;
elsewhere the budget is checked cooperatively at every rule application (`check`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass

from ..errors import DerivationTimeout

_deadlines: list[float] = []


class _Alarm(BaseException):
    """Raised by the timer: a BaseException, so that SymPy's `except Exception`/`except ValueError`
    clauses cannot swallow it; turned into DerivationTimeout where the budget ends."""


def check() -> None:
    """Raise DerivationTimeout if any active budget has run out."""
    if _deadlines and time.monotonic() > min(_deadlines):
        raise DerivationTimeout("the derivation ran past its time budget")


def remaining() -> float | None:
    """Seconds left in the tightest active budget (None: unlimited)."""
    return min(_deadlines) - time.monotonic() if _deadlines else None


def _on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    if _deadlines and time.monotonic() >= min(_deadlines):
        raise _Alarm()


def _disarm() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.setitimer(signal.ITIMER_REAL, 0)


def _arm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if _deadlines:
        signal.signal(signal.SIGALRM, _on_alarm)
        # repeat every 50 ms past the deadline, in case an interrupted call cleans up and carries on
        signal.setitimer(signal.ITIMER_REAL, max(min(_deadlines) - time.monotonic(), 1e-3), 0.05)
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass(frozen=True)
class _CallerTimer:
    """The caller's SIGALRM handler and pending interval timer, saved by the outermost budget."""

    handler: object
    remaining: float
    interval: float
    saved_at: float

    @classmethod
    def save(cls) -> _CallerTimer:
        remaining, interval = signal.getitimer(signal.ITIMER_REAL)
        return cls(signal.getsignal(signal.SIGALRM), remaining, interval, time.monotonic())

    def restore(self) -> None:
        """Put the handler back and re-arm the caller's timer for the time it had left (at least 1 ms: a
        timer that fell due during the derivation fires right after it, rather than being lost)."""
        signal.signal(signal.SIGALRM, self.handler if self.handler is not None else signal.SIG_DFL)
        if self.remaining > 0:
            left = self.remaining - (time.monotonic() - self.saved_at)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), self.interval)


@contextlib.contextmanager
def budget(seconds: float | None):
    """Run the body under a time budget of `seconds` (None: no new limit).

    In the main thread the outermost budget saves the caller's SIGALRM handler and pending timer and
    restores both on exit (a host application's own alarm survives a derivation)."""
    if seconds is None:
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    caller = _CallerTimer.save() if main and not _deadlines else None
    _deadlines.append(time.monotonic() + seconds)
    _arm()
    try:
        yield
    except _Alarm:
        raise DerivationTimeout(f"the derivation ran past its time budget of {seconds} s") from None
    finally:
        _disarm()
        _deadlines.pop()
        if caller is not None:
            caller.restore()
        else:
            _arm()
