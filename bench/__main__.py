"""`python -m bench NAME [--dsn DSN]`: run one benchmark (or `all`) on a scratch database."""

from __future__ import annotations

import argparse
import os
import sys

from bench.common import scratch_database


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=["enqueue", "all"])
    parser.add_argument(
        "--dsn",
        default=os.environ.get("PGWORKER_BENCH_DSN"),
        help="server to measure on (default: $PGWORKER_BENCH_DSN, else the embedded server)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (median)")
    args = parser.parse_args()
    with scratch_database(args.dsn) as dsn:
        if args.name in ("enqueue", "all"):
            from bench import enqueue

            enqueue.run(dsn, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
