"""The raw ceiling loop of the benchmark claims and completes every job exactly once."""

from __future__ import annotations

from bench.ceiling import raw_loop


def test_raw_loop_processes_exactly_the_jobs_it_inserted(dsn: str) -> None:
    result = raw_loop(dsn, jobs=7, batch=2, checkpoint=False)
    assert result["succeeded"] == result["total"] == 7
    # 2 + 2 + 2 + 1 jobs: four claim statements and four completions, one worker.
    assert (result["claims"], result["completions"], result["workers"]) == (4, 4, 1)
    assert result["typical_claim"] == 2
