from __future__ import annotations

import json

import pytest

from pgworker.jobs import JobStatus, check_name, encode_payload


def test_payload_is_compact_json() -> None:
    assert (
        encode_payload({"to": "a@example.com", "n": [1, 2]}) == '{"to":"a@example.com","n":[1,2]}'
    )


def test_none_payload_is_an_empty_object() -> None:
    assert encode_payload(None) == "{}"


def test_unicode_is_sent_as_is() -> None:
    assert json.loads(encode_payload({"s": "héllo 🎉"})) == {"s": "héllo 🎉"}


@pytest.mark.parametrize("payload", [{"s": "a\u0000b"}, ["\u0000"], {"\u0000key": 1}, "x\x00"])
def test_nul_characters_are_refused(payload: object) -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_payload(payload)


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    # The text "\u0000" (a backslash, then u0000) is fine for jsonb.
    text = encode_payload({"s": "\\u0000"})
    assert json.loads(text) == {"s": "\\u0000"}


@pytest.mark.parametrize("payload", [{"x": object()}, {"x": float("nan")}, {1j: 2}])
def test_non_json_payloads_are_refused(payload: object) -> None:
    with pytest.raises(ValueError, match="JSON"):
        encode_payload(payload)


@pytest.mark.parametrize("name", ["send_email", "a", "billing.invoice:v2-retry", "x" * 200])
def test_valid_names(name: str) -> None:
    assert check_name("task", name) == name


@pytest.mark.parametrize("name", ["", "has space", "quote'", "x" * 201, "semi;--", "emoji🎉"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid task name"):
        check_name("task", name)


def test_long_names_are_cut_in_the_message() -> None:
    with pytest.raises(ValueError, match="invalid queue name") as excinfo:
        check_name("queue", "y" * 5000)
    assert len(str(excinfo.value)) < 200


def test_statuses_match_the_sql_check() -> None:
    assert [s.value for s in JobStatus] == [
        "pending", "processing", "succeeded", "failed", "cancelled",
    ]  # fmt: skip
