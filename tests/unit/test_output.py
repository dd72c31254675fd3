from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pgworker.cli.output import ago, jsonable, shorten, table


def test_table_aligns_columns_and_numbers_right() -> None:
    text = table(("ID", "NAME", "NOTE"), [(7, "mail", None), (1234, "default", True)])
    assert text.splitlines() == [
        "  ID  NAME     NOTE",
        "   7  mail     -",
        "1234  default  yes",
    ]


def test_jsonable_turns_dataclasses_and_datetimes_into_json() -> None:
    @dataclass(frozen=True)
    class Item:
        at: datetime
        tags: tuple[str, ...]

    moment = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert jsonable([Item(moment, ("a",))]) == [{"at": "2026-11-23T17:00:00+00:00", "tags": ["a"]}]


def test_ago_and_shorten() -> None:
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert ago(now, now - timedelta(seconds=90)) == "1 min 30 s ago"
    assert ago(now, None) == "-"
    assert shorten("RuntimeError: boom\nTraceback...", 50) == "RuntimeError: boom"
    assert shorten("x" * 60, 10) == "xxxxxxx..."
    assert shorten(None, 10) == "-"
