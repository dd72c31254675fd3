"""The benchmark suite's own logic: its command line and how it judges a claim's plan.
No timing here: the numbers come from `make bench`, never from the test suite."""

from __future__ import annotations

from typing import Any

import pytest

from bench.claim import judge_plan, server_statement
from bench.common import percentile
from bench.settings import MEASURES, QUICK, Settings, parse_args
from pgworker import queries
from pgworker.worker import claim_statements


def test_no_measure_means_all_at_the_default_sizes() -> None:
    settings = parse_args([])
    assert settings.measures == MEASURES
    assert (settings.jobs, settings.repeat) == (100_000, 3)
    assert settings.concurrency == (1, 2, 5, 10, 20, 50)
    assert settings.backlogs == (1_000, 100_000, 1_000_000)
    assert settings.pickup_jobs >= 500
    assert settings.dsn is None or settings.dsn  # $PGWORKER_BENCH_DSN may be set


def test_measures_run_in_suite_order_whatever_the_order_given() -> None:
    assert parse_args(["claim", "burndown"]).measures == ("burndown", "claim")


def test_quick_shrinks_and_flags_override_it() -> None:
    settings = parse_args(["--quick", "--jobs", "3_000", "--concurrency", "1,4"])
    assert settings.quick
    assert settings.repeat == QUICK["repeat"]
    assert (settings.jobs, settings.concurrency) == (3_000, (1, 4))


def test_best_candidates_are_concurrency_prefetch_pairs() -> None:
    assert parse_args(["--best", "5:500,10:0"]).best_candidates == ((5, 500), (10, 0))
    assert parse_args(["--best", ""]).best_candidates == ()


@pytest.mark.parametrize(
    "argv", [["nonsense"], ["--jobs", "0"], ["--concurrency", "a,b"], ["--best", "5"]]
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_settings_saved_with_results_carry_no_dsn() -> None:
    assert "dsn" not in Settings(dsn="postgresql://u:secret@h/db").as_dict()


def test_percentile_is_a_measured_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0, 99.0, 100.0,
    )  # fmt: skip


def _plan(*nodes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Plan": {"Node Type": "Update", "Relation Name": "jobs", "Plans": list(nodes)}}]


def test_a_claim_index_scan_passes() -> None:
    verdict = judge_plan(
        _plan(
            {"Node Type": "Index Scan", "Index Name": "jobs_claim_idx", "Relation Name": "jobs"},
            {"Node Type": "Index Scan", "Index Name": "jobs_pkey", "Relation Name": "jobs"},
        )
    )
    assert verdict["ok"]
    assert verdict["verdict"] == "ok"


def test_a_seq_scan_of_jobs_fails_even_beside_the_index() -> None:
    verdict = judge_plan(
        _plan(
            {"Node Type": "Index Scan", "Index Name": "jobs_claim_idx", "Relation Name": "jobs"},
            {
                "Node Type": "Hash Join",
                "Plans": [{"Node Type": "Seq Scan", "Relation Name": "jobs"}],
            },
        )
    )
    assert not verdict["ok"]
    assert verdict["verdict"] == "seq scan of jobs"


def test_a_sorted_bitmap_scan_fails() -> None:
    verdict = judge_plan(
        _plan(
            {
                "Node Type": "Sort",
                "Plans": [{"Node Type": "Bitmap Heap Scan", "Relation Name": "jobs"}],
            }
        )
    )
    assert verdict["verdict"] == "no claim index scan, sort"


def test_the_server_form_of_the_claim_has_only_positional_parameters() -> None:
    statement = server_statement(claim_statements(queries.CLAIM_JOBS_TEMPLATE)[100])
    assert "%(" not in statement
    assert "$1" in statement
    assert "$2" in statement
    assert "LIMIT 100" in statement


def test_sorting_the_claimed_rows_only_passes() -> None:
    verdict = judge_plan(
        _plan(
            {"Node Type": "Index Scan", "Index Name": "jobs_claim_idx", "Relation Name": "jobs"},
            {
                "Node Type": "Sort",
                "Plans": [
                    {
                        "Node Type": "Update",
                        "Parent Relationship": "InitPlan",
                        "Plans": [{"Node Type": "Tid Scan", "Relation Name": "jobs"}],
                    },
                    {
                        "Node Type": "CTE Scan",
                        "CTE Name": "claimed",
                        "Parent Relationship": "Outer",
                    },
                ],
            },
        )
    )
    assert verdict["ok"]
