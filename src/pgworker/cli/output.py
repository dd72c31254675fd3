"""How operator commands print: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import typer

from pgworker.durations import format_duration


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under headers, in columns two spaces apart; columns of numbers align right."""
    data = [list(row) for row in rows]
    cells = [[_cell(value) for value in row] for row in data]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(data) and all(_is_number(row[i]) or row[i] is None for row in data)
        for i in range(len(headers))
    ]
    lines = []
    for row in [list(headers), *cells]:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)  # ids and pids included: no thousands separators to copy and paste


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    """Print the table, or `empty` when there are no rows."""
    typer.echo(table(headers, rows) if rows else empty)


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, tuples and sets as JSON values (datetimes in ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def ago(as_of: datetime, moment: datetime | None) -> str:
    """How long ago `moment` was, on the database's clock ("12 s ago"); "-" for none."""
    if moment is None:
        return "-"
    return f"{format_duration((as_of - moment).total_seconds())} ago"


def shorten(text: str | None, width: int) -> str:
    """The first line of `text`, cut to `width` characters."""
    if not text:
        return "-"
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= width else line[: width - 3] + "..."
