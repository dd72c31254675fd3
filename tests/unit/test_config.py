from __future__ import annotations

import pytest

from pgworker.config import env_name, mask_dsn, normalize_dsn, resolve_dsn
from pgworker.errors import ConfigError


def test_dsn_flag_wins_over_environment() -> None:
    env = {"PGWORKER_DSN": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"}
    source = resolve_dsn("postgresql://flag/z", env)
    assert (source.dsn, source.origin) == ("postgresql://flag/z", "--dsn")


def test_pgworker_dsn_wins_over_database_url() -> None:
    env = {"PGWORKER_DSN": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"}
    assert resolve_dsn(None, env).origin == "PGWORKER_DSN"


def test_database_url_is_the_last_configured_source() -> None:
    source = resolve_dsn(None, {"DATABASE_URL": "postgres://b/y"})
    assert (source.dsn, source.origin) == ("postgres://b/y", "DATABASE_URL")


def test_no_dsn_means_the_embedded_server() -> None:
    source = resolve_dsn(None, {"PGWORKER_DSN": ""})
    assert (source.dsn, source.origin) == (None, "embedded")


def test_sqlalchemy_urls_lose_their_driver_suffix() -> None:
    assert normalize_dsn("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert normalize_dsn("postgres+asyncpg://u@h/db") == "postgres://u@h/db"


def test_invalid_dsn_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as excinfo:
        normalize_dsn("user=u password=hunter2 nonsense", "PGWORKER_DSN")
    assert "PGWORKER_DSN" in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:****@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u@h/db?password=s3cret&sslmode=require",
         "postgresql://u@h/db?password=****&sslmode=require"),
        ("host=h password=s3cret user=u", "host=h password=**** user=u"),
        ("host=h password='s3 cr\\'et' user=u", "host=h password=**** user=u"),
        ("postgresql://postgres@/pgworker?host=/tmp/x", "postgresql://postgres@/pgworker?host=/tmp/x"),
        ("postgresql://u:pa:ss@h/db", "postgresql://u:****@h/db"),
        ("postgresql://:s3cret@h/db", "postgresql://:****@h/db"),
        ("postgresql://u:p%40ss%2Fw@h/db", "postgresql://u:****@h/db"),
        ("postgresql://u:s3cret@h1:5432,h2:5433/db", "postgresql://u:****@h1:5432,h2:5433/db"),
        # The password used again elsewhere in the DSN is masked there too.
        ("postgresql://u:s3cret@h/db?application_name=s3cret",
         "postgresql://u:****@h/db?application_name=****"),
    ],
)  # fmt: skip
def test_mask_dsn_hides_the_password_only(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_env_name_follows_the_flag() -> None:
    assert env_name("--poll-interval") == "PGWORKER_POLL_INTERVAL"
    assert env_name("concurrency") == "PGWORKER_CONCURRENCY"
