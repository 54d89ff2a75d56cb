"""Delivery inside another process: the embedded streaming `run` delivers from a thread.

The thread has a store connection of its own (DuckDB allows several in one process; only
this thread uses it), so detection keeps writing alerts on its own connection and calls
`wake()` after each write: delivery then starts at once instead of at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.sinks.delivery import Deliverer
from pipeline.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class DeliveryHandle:
    """A delivery thread inside another process (the embedded streaming `run`)."""

    thread: threading.Thread
    stop_event: threading.Event
    wake_event: threading.Event
    deliverer: Deliverer
    errors: list[BaseException] = field(default_factory=list)

    def wake(self) -> None:
        """New alerts are in the store: look now rather than at the next poll."""
        self.wake_event.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests in flight, record them, close sinks and the store."""
        self.stop_event.set()
        self.wake_event.set()
        self.thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


def start_delivery_thread(store_factory: Callable[[], Store], config: Any) -> DeliveryHandle:
    """Deliver `config.sinks` (with `config.delivery`) from a store of its own, made by
    `store_factory()` (unopened; opened here, closed when stopped), on a daemon thread.
    Secrets and the store are checked before this returns: a ConfigError or StoreError
    surfaces to the caller, not in the thread."""
    store = store_factory()
    store.open()
    try:
        deliverer = Deliverer(store, config.sinks, config.delivery)
        deliverer.start()
    except BaseException:
        store.close()
        raise
    stop, wake = threading.Event(), threading.Event()
    handle = DeliveryHandle(threading.Thread(), stop, wake, deliverer)

    def loop() -> None:
        try:
            deliverer.run(stop, wake)
        except BaseException as exc:  # reported through the handle and the log
            handle.errors.append(exc)
            log.exception("delivery thread stopped")
        finally:
            try:
                deliverer.close()
            finally:
                store.close()

    handle.thread = threading.Thread(target=loop, name="secretwatch-delivery", daemon=True)
    handle.thread.start()
    return handle
