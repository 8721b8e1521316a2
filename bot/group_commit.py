"""Group commit for requests that each write a little and wait for it: one transaction for all waiting at once.

A canteen at noon pushes thousands of card entries a minute, each its own request on its own thread. Written one
transaction each, every entry pays for BEGIN, its statements, COMMIT and a WAL flush; written together, the threads
waiting at the same moment share them. No extra thread and no timer: the first request to arrive writes (it leads);
the ones arriving while it writes wait, and when it is done the first of them leads the next batch with everything
that came meanwhile. A leader yields the interpreter once before taking the queue, so threads the last batch woke
that are ready with their next request join it. A lone request writes at once, so an idle bot answers as fast as
before; a busy one writes bigger batches, never waits for a batch to fill.

``write(items)`` returns one outcome per item, in order: a value, or an exception instance, which is raised in that
item's request only. An exception raised by ``write`` itself (the database went away) is raised in every request of
the batch: nothing of it was written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

Item = TypeVar("Item")
Out = TypeVar("Out")


class _Waiting(Generic[Item]):
    __slots__ = ("item", "woken", "lead", "outcome")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.woken = threading.Event()
        self.lead = False
        self.outcome: object = None


class GroupCommit(Generic[Item, Out]):
    """``submit(item)`` from any thread: its outcome once the batch holding it is committed (``max_batch`` at most)."""

    def __init__(self, write: Callable[[list[Item]], Sequence[Out | BaseException]], max_batch: int = 64) -> None:
        self._write = write
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiting[Item]] = []
        self._writing = False

    def submit(self, item: Item) -> Out:
        me = _Waiting(item)
        with self._lock:
            self._queue.append(me)
            me.lead = not self._writing
            self._writing = True
        if not me.lead:
            me.woken.wait()
        if me.lead:
            self._lead()
        if isinstance(me.outcome, BaseException):
            raise me.outcome
        return cast(Out, me.outcome)

    def _lead(self) -> None:
        """Write every request waiting now (its own first), wake them, and hand the lead to the next one waiting."""
        time.sleep(0)  # let the threads the last batch woke, ready with their next request, join this one
        with self._lock:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
        try:
            outcomes: Sequence[object] = self._write([w.item for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:  # every request of the batch learns it failed; the lead passes on regardless
            outcomes = [exc] * len(batch)
        finally:
            with self._lock:
                nxt = self._queue[0] if self._queue else None
                self._writing = nxt is not None
            if nxt is not None:
                nxt.lead = True
                nxt.woken.set()
        for w, outcome in zip(batch, outcomes, strict=True):
            w.outcome = outcome
            if w.lead:
                continue  # the leader: it reads its outcome itself
            w.woken.set()
