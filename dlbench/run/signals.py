"""Ctrl-C and SIGTERM during a run: the first one stops it, later ones wait.

The first SIGINT or SIGTERM raises :class:`KeyboardInterrupt`
(:class:`Terminated` for SIGTERM, which a scheduler, ``timeout`` or ``docker
stop`` sends) in the main thread, so the run marks its unfinished jobs
interrupted and saves its document. Every later one is ignored: a second
Ctrl-C a moment after the first (an impatient user, a scheduler that signals
twice) would otherwise land in the middle of that save or of the cleanup
after it, and end the process with a traceback and a document whose
unfinished jobs are not marked. And a signal that arrives while the document
is being written or a row recorded (:func:`deferred`) waits until that is
done, so a row is never half recorded.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled like Ctrl-C, told apart in the exit code (143)."""


class StopSignals:
    """The handler of a run's stop signals, and what it has seen."""

    def __init__(self):
        self.received: int | None = None  # the first stop signal
        self._deferring = 0
        self._pending = False

    def handle(self, signum, frame) -> None:
        if self.received is not None:
            return  # the run is stopping already
        self.received = signum
        if self._deferring:
            self._pending = True
            return
        raise self.stop()

    def stop(self) -> KeyboardInterrupt:
        return Terminated() if self.received == signal.SIGTERM else KeyboardInterrupt()

    @contextlib.contextmanager
    def deferring(self):
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self._pending and not self._deferring:
            self._pending = False
            raise self.stop()


_active: StopSignals | None = None


@contextlib.contextmanager
def stop_signals(process_ends: bool = False):
    """Handle SIGINT and SIGTERM as above while the block runs (in the main
    thread; elsewhere, or inside another such block, nothing changes). After
    the block the previous handlers are back, unless ``process_ends`` (the
    CLI, which exits right after) and a stop signal came: then later ones
    stay ignored until the process has exited."""
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield _active
        return
    handler = _active = StopSignals()
    previous = {signum: signal.signal(signum, handler.handle) for signum in STOP_SIGNALS}
    try:
        yield handler
    finally:
        _active = None
        for signum, before in previous.items():
            signal.signal(signum, signal.SIG_IGN if process_ends and handler.received else before)


def deferred():
    """A block during which a first stop signal waits (it is raised when the block ends)."""
    return _active.deferring() if _active is not None else contextlib.nullcontext()
