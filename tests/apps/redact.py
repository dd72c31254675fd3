"""Redaction hooks for the worker tests (`--redact apps.redact:scrub`)."""

from __future__ import annotations

import re

SECRET = re.compile(r"SECRET-[A-Za-z0-9]+")


def scrub(text: str) -> str:
    """Replace every SECRET-... token with [redacted]."""
    return SECRET.sub("[redacted]", text)


def broken(text: str) -> str:
    """A hook with a bug: its message quotes the text it should have hidden."""
    raise RuntimeError(f"cannot redact {text}")


NOT_A_FUNCTION = "scrub"
