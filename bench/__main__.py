"""`python -m bench [MEASURE ...] [--quick] [--dsn DSN] ...`: see `python -m bench --help`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.settings import parse_args


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    from bench.suite import run

    try:
        run(settings)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
