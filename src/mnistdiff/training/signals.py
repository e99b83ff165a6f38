"""SIGINT and SIGTERM as a flag the training loop checks, so a kill saves a checkpoint first."""

from __future__ import annotations

import signal
import threading


class StopOnSignal:
    """Turns SIGINT and SIGTERM into a flag the loop checks, so a kill saves first."""

    def __init__(self):
        self.signalled = False
        self.previous = {}

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere, run without them.
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signalled = True

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
