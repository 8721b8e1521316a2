"""bot.group_commit: requests waiting at the same moment are written in one batch, each learns its own outcome, a
failed write fails only its batch, and the lead always passes on (no request is left waiting)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.group_commit import GroupCommit

pytestmark = pytest.mark.unit


class Writer:
    """A write that records its batches; the first batch waits for ``release`` so the others pile up meanwhile."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_on in items:
            raise ConnectionError("database went away")
        return [ValueError(i) if i.startswith("bad") else i.upper() for i in items]


def _wait_queued(gc: GroupCommit[str, str], n: int) -> None:
    deadline = time.monotonic() + 10
    while len(gc._queue) < n:
        assert time.monotonic() < deadline, "submits did not queue"
        time.sleep(0.001)


def test_a_lone_request_is_written_at_once() -> None:
    writer = Writer()
    writer.release.set()
    gc = GroupCommit(writer)
    assert gc.submit("a") == "A"
    assert gc.submit("b") == "B"
    assert writer.batches == [["a"], ["b"]]


def test_requests_arriving_during_a_write_go_together_each_with_its_own_outcome() -> None:
    writer = Writer()
    gc = GroupCommit(writer)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(gc.submit, "first")
        assert writer.entered.wait(10)
        others = {name: pool.submit(gc.submit, name) for name in ["b", "bad1", "c", "d", "bad2", "e"]}
        _wait_queued(gc, 6)
        writer.release.set()
        assert first.result(10) == "FIRST"
        for name, future in others.items():
            if name.startswith("bad"):
                with pytest.raises(ValueError, match=name):
                    future.result(10)
            else:
                assert future.result(10) == name.upper()
    assert writer.batches[0] == ["first"]
    assert sorted(writer.batches[1]) == ["b", "bad1", "bad2", "c", "d", "e"] and len(writer.batches) == 2


def test_a_failed_write_fails_its_batch_only_and_the_lead_passes_on() -> None:
    writer = Writer(fail_on="x")
    gc = GroupCommit(writer, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(gc.submit, "first")
        assert writer.entered.wait(10)
        later = [pool.submit(gc.submit, name) for name in ["p", "x", "q", "r", "s"]]
        _wait_queued(gc, 5)
        writer.release.set()
        assert first.result(10) == "FIRST"
        outcomes = []
        for future in later:
            try:
                outcomes.append(future.result(10))
            except ConnectionError:
                outcomes.append("failed")
    # batches of at most 3, in arrival order: the one holding "x" failed as a whole, the next was written
    assert [len(b) for b in writer.batches] == [1, 3, 2]
    failed = set(writer.batches[1])
    assert "x" in failed
    assert [o == "failed" for o in outcomes] == [name in failed for name in ["p", "x", "q", "r", "s"]]
    assert gc.submit("t") == "T"  # nobody holds the lead any more
    assert not gc._writing
