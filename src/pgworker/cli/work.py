"""`pgworker work`: run a worker until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pgworker.cli.app import DsnOption, app, dsn_from
from pgworker.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DB_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PRUNE_INTERVAL,
    DEFAULT_RESCUE_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STALE_AFTER,
    Retention,
    WorkerConfig,
    env_name,
)
from pgworker.errors import ConfigError, PgworkerError

if TYPE_CHECKING:
    from pgworker.metrics import Metrics


def _opt(flag: str, help: str, **kwargs: Any) -> Any:
    """A flag that PGWORKER_<FLAG> stands in for."""
    return typer.Option(flag, help=help, envvar=env_name(flag), **kwargs)


@app.command("work")
def work(
    app_spec: Annotated[
        str,
        _opt(
            "--app",
            "The module holding your TaskRegistry, as MODULE[:ATTRIBUTE] (attribute default:"
            " registry).",
            show_default=False,
        ),
    ],
    concurrency: Annotated[
        int, _opt("--concurrency", "Handler threads: jobs run at once, never more.", min=1)
    ] = DEFAULT_CONCURRENCY,
    queues: Annotated[
        str | None,
        _opt(
            "--queues",
            "Comma-separated queues to serve. Default: the queues your tasks declare"
            " ('default' for tasks that declare none).",
            show_default=False,
        ),
    ] = None,
    prefetch: Annotated[
        int | None,
        _opt(
            "--prefetch",
            "Jobs claimed ahead of free threads. Default: 200 per thread, at most 1000."
            " Shrinks on its own while handlers are slow; 0 turns it off.",
            min=0,
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float,
        _opt(
            "--poll-interval", "Seconds between polls (LISTEN wakes the worker sooner).", min=0.01
        ),
    ] = DEFAULT_POLL_INTERVAL,
    no_listen: Annotated[
        bool,
        _opt("--no-listen", "Poll only, no LISTEN/NOTIFY (PgBouncer in transaction mode)."),
    ] = False,
    shutdown_timeout: Annotated[
        float,
        _opt("--shutdown-timeout", "Seconds running jobs get to finish after SIGTERM.", min=0),
    ] = DEFAULT_SHUTDOWN_TIMEOUT,
    heartbeat_interval: Annotated[
        float, _opt("--heartbeat-interval", "Seconds between heartbeats.", min=0.01)
    ] = DEFAULT_HEARTBEAT_INTERVAL,
    rescue_interval: Annotated[
        float,
        _opt("--rescue-interval", "Seconds between rescues of lost workers' jobs.", min=0.01),
    ] = DEFAULT_RESCUE_INTERVAL,
    stale_after: Annotated[
        float,
        _opt(
            "--stale-after", "Seconds without a heartbeat before a worker counts as lost.", min=0.01
        ),
    ] = DEFAULT_STALE_AFTER,
    db_timeout: Annotated[
        float,
        _opt(
            "--db-timeout",
            "Seconds a database call may hang before its connection is cut and reopened.",
            min=0.1,
        ),
    ] = DEFAULT_DB_TIMEOUT,
    retention: Annotated[
        str | None,
        _opt(
            "--retention",
            "How long finished jobs are kept before workers prune them: one duration for every"
            " status (3d), or per status (succeeded=12h,failed=30d; others keep their default)."
            " Default: succeeded=1d,failed=7d,cancelled=7d.",
            show_default=False,
        ),
    ] = None,
    prune_interval: Annotated[
        float,
        _opt("--prune-interval", "Seconds between prunes of finished jobs.", min=0.01),
    ] = DEFAULT_PRUNE_INTERVAL,
    no_prune: Annotated[
        bool, _opt("--no-prune", "Never prune in this worker (others still may).")
    ] = False,
    metrics_port: Annotated[
        int | None,
        _opt(
            "--metrics-port",
            "Serve Prometheus metrics on this port at /metrics (needs pgworker[metrics]).",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str, _opt("--metrics-host", "Address the metrics server listens on.")
    ] = "0.0.0.0",
    log_format: Annotated[str, _opt("--log-format", "text or json.")] = "text",
    log_level: Annotated[str, _opt("--log-level", "debug, info, warning or error.")] = "info",
    log_payloads: Annotated[
        bool,
        _opt(
            "--log-payloads",
            "Add each job's payload (cut at 2,000 characters) to its log lines. Off by default:"
            " payloads may hold personal data or secrets.",
        ),
    ] = False,
    redact: Annotated[
        str | None,
        _opt(
            "--redact",
            "MODULE:FUNCTION, a str -> str function that rewrites error text before it is"
            " stored (last_error, errors) or logged.",
            show_default=False,
        ),
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Run a worker: claim due jobs of the queues and run them with your task handlers.

    SIGTERM or SIGINT stops claiming and lets running jobs finish (--shutdown-timeout);
    a second signal exits at once with 128 + the signal number.
    """
    from pgworker.logs import configure_logging
    from pgworker.redaction import load_redactor
    from pgworker.tasks import load_registry
    from pgworker.worker import Worker

    try:
        configure_logging(fmt=log_format.lower(), level=log_level.lower())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = WorkerConfig(
        concurrency=concurrency,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()) if queues else None,
        prefetch=prefetch,
        poll_interval=poll_interval,
        listen=not no_listen,
        shutdown_timeout=shutdown_timeout,
        heartbeat_interval=heartbeat_interval,
        rescue_interval=rescue_interval,
        stale_after=stale_after,
        db_timeout=db_timeout,
        log_payloads=log_payloads,
        prune=not no_prune,
        retention=Retention.parse(retention) if retention is not None else Retention(),
        prune_interval=prune_interval,
    )
    metrics = _metrics() if metrics_port is not None else None  # before any slow work
    registry = load_registry(app_spec)
    redactor = load_redactor(redact) if redact else None
    target = dsn_from(dsn)
    worker = Worker(registry, target, config, redact=redactor, metrics=metrics)
    if metrics is not None and metrics_port is not None:
        metrics.watch(worker, target)
        try:
            port = metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise PgworkerError(
                f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}"
            ) from None
        logging.getLogger("pgworker.metrics").info(
            f"serving metrics on http://{metrics_host}:{port}/metrics"
        )
    try:
        code = worker.run(install_signals=True)
    finally:
        if metrics is not None:
            metrics.close()
    raise typer.Exit(code)


def _metrics() -> Metrics:
    """A Metrics object; a one-line error if the `metrics` extra is not installed."""
    try:
        from pgworker.metrics import Metrics
    except ImportError as exc:
        if not (exc.name or "").startswith("prometheus_client"):
            raise
        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'pgworker[metrics]'"
        ) from None
    return Metrics()
