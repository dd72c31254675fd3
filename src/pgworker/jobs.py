"""Job statuses and the payload encoding shared by every enqueue path."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Final

from pgworker.config import NAME_PATTERN


class JobStatus(StrEnum):
    """The life of a job; the same words as the jobs_status_valid CHECK."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATUSES: Final = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

# One encoder for every payload: json.dumps() with options builds a new one per call.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

# An escaped NUL (\u0000) not itself escaped: jsonb cannot store it.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encode_payload(payload: Any) -> str:
    """The payload as compact JSON text; ValueError for what jsonb would refuse."""
    if payload is None:
        return "{}"
    try:
        text = _ENCODER.encode(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serializable: {exc}") from None
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise ValueError(
            "payload contains a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    return text


def check_name(kind: str, value: str) -> str:
    """Refuse a task or queue name that the database CHECKs would refuse, with a clear message."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"invalid {kind} name {preview(value)}: use 1-200 characters of A-Z a-z 0-9 _ . : -"
        )
    return value


def preview(value: object, limit: int = 60) -> str:
    """repr() of a value cut to `limit` characters, for error messages about user input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
