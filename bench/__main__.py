"""`python -m bench [MEASURE ...] [--quick] [--dsn DSN] ...`: see `python -m bench --help`."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bench.settings import parse_args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C: the finally blocks stop the worker process, drop the
    # scratch database and stop the embedded server.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    from bench.suite import run

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run(settings)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
