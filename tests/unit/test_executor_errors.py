from __future__ import annotations

from pgworker.executor import MAX_SUMMARY_CHARS, describe_failure, storable


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_summary_and_traceback() -> None:
    summary, detail = describe_failure(_raise(ValueError("bad input")))
    assert summary == "ValueError: bad input"
    assert detail.startswith("ValueError: bad input\nTraceback (most recent call last):")
    assert "_raise" in detail


def test_huge_messages_are_cut() -> None:
    summary, detail = describe_failure(_raise(ValueError("x" * 10_000_000)))
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.endswith("(truncated)")
    assert len(detail) < 5000


def test_text_is_storable_in_postgres() -> None:
    assert storable("a\x00b") == "a\\x00b"
    assert storable("lone \ud800 surrogate") == "lone \\ud800 surrogate"
    summary, _ = describe_failure(_raise(RuntimeError("nul \x00 here")))
    assert "\x00" not in summary


def test_unprintable_exceptions() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    summary, _ = describe_failure(_raise(Weird()))
    assert summary.startswith("test_unprintable_exceptions.<locals>.Weird: <exception message")


def test_redaction_applies_to_both() -> None:
    summary, detail = describe_failure(
        _raise(ValueError("token=s3cret")), lambda text: text.replace("s3cret", "***")
    )
    assert "s3cret" not in summary + detail
