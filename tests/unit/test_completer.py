"""What the completer keeps and what it drops when a write fails (no database needed)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgworker.completer import Completer, Ending


def _failing_completer(dropped: list[bool], written: list[list[int]]) -> Completer:
    completer = Completer(
        "postgresql://nobody@127.0.0.1:1/none",
        application_name="test",
        on_written=written.append,
        on_dropped=lambda: dropped.append(True),
    )

    def fail(kind: str, worker_id: str, batch: list[Any]) -> None:
        raise psycopg.OperationalError("connection lost")

    completer._write = fail  # type: ignore[method-assign]
    return completer


def test_a_failed_write_keeps_outcomes_but_drops_give_backs() -> None:
    dropped: list[bool] = []
    written: list[list[int]] = []
    completer = _failing_completer(dropped, written)
    success = (1, 1, "w")
    retry = Ending(2, 1, "w", "pending", delay=3.0, error="boom", summary="boom")
    give_back = Ending(3, 1, "w", "pending", refund=1, reconcile=True)
    for outcome in (success, retry, give_back):
        completer.submit(outcome)
        completer._held.append(completer._queue.get_nowait())  # type: ignore[arg-type]
    with pytest.raises(psycopg.OperationalError):
        completer.run_once()
    assert completer._held == [success, retry]  # kept: retried until written
    assert dropped == [True]  # the worker reconciles instead of retrying the give-back
    assert written == [[3]]
    assert completer.pending == 2


def test_nothing_is_dropped_when_no_give_back_failed() -> None:
    dropped: list[bool] = []
    completer = _failing_completer(dropped, [])
    completer._held.append((1, 1, "w"))
    with pytest.raises(psycopg.OperationalError):
        completer.run_once()
    assert completer._held == [(1, 1, "w")]
    assert dropped == []
