"""Executor: runs claimed jobs on a fixed set of threads and turns each result into an outcome."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from pgworker.completer import Completer, Ending
from pgworker.context import JobContext
from pgworker.errors import PermanentError, RetryLater
from pgworker.logs import RateLimiter
from pgworker.maintenance import Heartbeat
from pgworker.redaction import Redactor, redact_text
from pgworker.tasks import Task, TaskRegistry

log = logging.getLogger("pgworker.worker")

# A claimed row: (id, task, queue, attempts, max_attempts, payload as JSON text).
Row = tuple[int, str, str, int, int | None, str]

# Prefetch holds at most this many seconds of work per thread (from the recent handler
# durations), so a worker busy with slow handlers leaves the queue to idle workers.
PREFETCH_HORIZON: Final = 0.05
# Prefetched jobs that would wait longer than this at the rate handlers finish now go back
# to the queue for idle workers. Judged on the finishing rate over the last RATE_WINDOW s, so
# one slow job among fast ones changes nothing, and a worker whose threads all hang gives
# back everything it buffered.
GIVE_BACK_HORIZON: Final = 0.5
RATE_WINDOW: Final = 1.0
# Error text stored per attempt: "Type: message" cut here, then the traceback's tail.
MAX_SUMMARY_CHARS: Final = 1000
MAX_TRACEBACK_CHARS: Final = 3000
MAX_MAX_ATTEMPTS: Final = 1000

# Payload text in a job log line (--log-payloads) is cut here.
MAX_LOGGED_PAYLOAD_CHARS: Final = 2000

# A running attempt: (job_id, attempt, worker_id, task, queue, max_attempts, started,
# payload as JSON text).
Running = tuple[int, int, str, Task, str, int, float, str]


def describe_failure(exc: BaseException, redact: Redactor | None = None) -> tuple[str, str]:
    """(summary, detail) of an exception, bounded and storable as PostgreSQL text."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception message could not be printed>"
    name = type(exc).__qualname__
    summary = f"{name}: {message}" if message else name
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 15] + "... (truncated)"
    frames = "".join(traceback.format_tb(exc.__traceback__))
    if len(frames) > MAX_TRACEBACK_CHARS:
        frames = "..." + frames[-MAX_TRACEBACK_CHARS:]
    detail = f"{summary}\nTraceback (most recent call last):\n{frames}" if frames else summary
    if redact is not None:
        summary, detail = redact_text(redact, summary), redact_text(redact, detail)
    return storable(summary), storable(detail)


def storable(text: str) -> str:
    """Text PostgreSQL accepts: no NUL characters, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Slot:
    """One handler thread: its job, its deadline, and whether the outcome is still its own."""

    __slots__ = ("cancelled", "deadline", "job", "lock", "timed_out")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.job: Running | None = None
        self.deadline = 0.0
        self.timed_out = False

    def begin(self, job: Running, deadline: float) -> None:
        with self.lock:
            self.job = job
            self.deadline = deadline
            self.timed_out = False

    def end(self) -> bool:
        """Mark the slot free; False if the attempt's outcome was already recorded elsewhere."""
        with self.lock:
            mine = not self.timed_out
            self.job = None
            self.timed_out = False
        return mine

    def take_over(self) -> Running | None:
        """Claim the running attempt's outcome (timeout, shutdown); None if nothing to take."""
        with self.lock:
            if self.job is None or self.timed_out:
                return None
            self.timed_out = True
            return self.job


class Executor:
    """Runs claimed jobs on `concurrency` threads: never more handlers at once than that.

    Claimed jobs wait in a local buffer (the prefetch) until a thread is free. A thread whose
    handler overran its timeout keeps its slot until the handler really returns.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        completer: Completer,
        *,
        concurrency: int,
        prefetch: int,
        wake: threading.Event,
        redact: Redactor | None = None,
        log_payloads: bool = False,
        on_job_end: Callable[[str, str, str, float], None] | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._registry = registry
        self._completer = completer
        self.concurrency = concurrency
        self.prefetch = prefetch
        self._wake = wake
        self._redact = redact
        self._log_payloads = log_payloads  # off: no log line carries a payload
        self._on_job_end = on_job_end  # metrics: (task, queue, status, seconds)
        self._heartbeat = heartbeat  # None: every claim is trusted (tests without a worker)
        self._held_limiter = RateLimiter()
        self._buffer: queue.SimpleQueue[tuple[Row, str] | None] = queue.SimpleQueue()
        self._slots = [Slot() for _ in range(concurrency)]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._outstanding = 0  # claimed and not finished: buffered + running
        self._refill_at = concurrency - 1
        self._avg_duration: float | None = None
        self._finished = 0  # jobs whose thread returned, ever
        self._rate_samples: deque[tuple[float, int]] = deque()  # (monotonic, _finished)
        self.worker_id = ""
        # Told the ids of jobs given back while the worker runs on (the worker stops counting
        # them as its own before the write).
        self.on_given_back: Callable[[list[int]], None] | None = None
        self.stopping = False
        self.drained = False  # the last claim found fewer jobs than it asked for
        self._debug = False

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._debug = log.isEnabledFor(logging.DEBUG)
        for number, slot in enumerate(self._slots, 1):
            thread = threading.Thread(
                target=self._work, args=(slot,), name=f"pgworker-slot-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop_threads(self) -> None:
        """Ask every thread to exit once its current handler returns."""
        for _ in self._threads:
            self._buffer.put(None)

    # --- what the claim loop asks -----------------------------------------------------------

    def claim_size(self) -> int:
        """How many jobs to claim now: 0 while the buffer holds enough."""
        allowance = self._allowance()
        capacity = self.concurrency + allowance
        refill_at = self.concurrency - 1 + allowance // 2
        self._refill_at = refill_at
        # Outcomes not yet written still hold their rows in 'processing'. Up to the prefetch
        # allowance of them may be in flight without holding claims back (counting every one
        # cost a third of the throughput: 28k against 40k jobs/s); beyond it they count, so a
        # slow database never lets claims run far ahead of completions, and while handlers
        # are slow (allowance 0) a worker holds exactly what it can run.
        outstanding = self._outstanding + max(0, self._completer.pending - allowance)
        if outstanding > refill_at:
            return 0
        return capacity - outstanding

    def _allowance(self) -> int:
        average = self._avg_duration
        if average is None:  # nothing measured yet: claim only what the threads can start
            return 0
        if average <= 0:
            return self.prefetch
        return min(self.prefetch, int(self.concurrency * PREFETCH_HORIZON / average))

    def dispatch(self, rows: list[Row], worker_id: str) -> None:
        """Hand freshly claimed rows to the threads."""
        with self._lock:
            self._outstanding += len(rows)
        put = self._buffer.put
        for row in rows:
            put((row, worker_id))

    @property
    def outstanding(self) -> int:
        """Jobs claimed and not finished (buffered or running)."""
        return self._outstanding

    def busy(self) -> int:
        """Threads running a handler now."""
        return sum(1 for slot in self._slots if slot.job is not None)

    # --- the handler threads ----------------------------------------------------------------

    def _work(self, slot: Slot) -> None:
        get = self._buffer.get
        execute = self._execute
        while True:
            item = get()
            if item is None:
                return
            try:
                execute(slot, item[0], item[1])
            except Exception:  # a bug of ours must not kill the slot
                log.exception("job runner failed")
            finally:
                self._release()

    def _release(self) -> None:
        with self._lock:
            self._outstanding -= 1
            self._finished += 1
            outstanding = self._outstanding
        if outstanding <= self._refill_at and not self.drained:
            self._wake.set()

    def _execute(self, slot: Slot, row: Row, worker_id: str) -> None:
        job_id, task_name, queue_name, attempt, max_attempts, payload_text = row
        if worker_id != self.worker_id:
            # Claimed under an id another worker has since declared dead: the job was
            # rescued and may already run elsewhere. Running it here would be a duplicate.
            return
        heartbeat = self._heartbeat
        if (
            heartbeat is not None
            and not heartbeat.claims_trusted()
            and not self._await_trust(heartbeat, worker_id)
        ):
            return
        submit = self._completer.submit
        if self.stopping:
            submit(Ending(job_id, attempt, worker_id, "pending", refund=1))
            return
        task = self._registry.get(task_name)
        if task is None:
            # A task name from the database is only ever a key into the registry.
            self._fail_now(row, worker_id, f"unknown task {task_name!r}", "unknown task")
            return
        limit = max_attempts or task.max_attempts
        if attempt > limit:
            # Rescued after its worker died during the last attempt: nothing left to run.
            submit(Ending(job_id, attempt, worker_id, "failed", refund=1))
            self._log_end(logging.WARNING, "job failed: attempts used up", row, None, "failed")
            if self._on_job_end is not None:
                self._on_job_end(task_name, queue_name, "failed", 0.0)
            return
        try:
            payload = json.loads(payload_text)
        except (ValueError, RecursionError) as exc:
            summary, _ = describe_failure(exc, self._redact)
            self._fail_now(row, worker_id, f"undecodable payload: {summary}", "undecodable")
            return
        cancelled = slot.cancelled
        if cancelled.is_set():
            cancelled.clear()
        started = time.monotonic()
        deadline = started + task.timeout
        ctx = JobContext(
            job_id=job_id,
            task=task_name,
            queue=queue_name,
            attempt=attempt,
            max_attempts=limit,
            deadline=deadline,
            cancelled=cancelled,
            worker_id=worker_id,
        )
        slot.begin(
            (job_id, attempt, worker_id, task, queue_name, limit, started, payload_text), deadline
        )
        error: BaseException | None = None
        try:
            task.handler(ctx, payload)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt fail the job only
            error = exc
        duration = time.monotonic() - started
        if not slot.end():
            log.info(
                "handler returned after its attempt was recorded (timeout or shutdown)",
                extra={
                    **ctx.fields(),
                    "duration_ms": round(duration * 1000, 3),
                    "payload": self._loggable(payload_text),
                },
            )
            return
        average = self._avg_duration
        self._avg_duration = duration if average is None else average + 0.2 * (duration - average)
        if error is None:
            submit((job_id, attempt, worker_id))
            if self._debug:
                self._log_end(logging.DEBUG, "job succeeded", row, duration, "succeeded")
            if self._on_job_end is not None:
                self._on_job_end(task_name, queue_name, "succeeded", duration)
            return
        self._record_failure(
            error, job_id, attempt, worker_id, task, queue_name, limit, duration, payload_text
        )

    def _await_trust(self, heartbeat: Heartbeat, worker_id: str) -> bool:
        """Hold a claimed job while no heartbeat has found this worker's row for too long (the
        process was paused, the database was out of reach): another worker may have declared
        this one dead and rescued the job. True once a heartbeat finds the row (the claim is
        still ours) or the worker stops (the job is handed back, fenced); False when this
        worker was declared dead meanwhile: the job is someone else's now.
        """
        while not heartbeat.wait_trusted(0.5):
            if worker_id != self.worker_id:
                return False
            if self.stopping:
                return True
            allowed, held = self._held_limiter.allow("held")
            if allowed:
                log.warning(
                    "holding claimed jobs: no heartbeat has reached the database for"
                    f" {heartbeat.trust_for:g} s, so another worker may have rescued them",
                    extra={"worker_id": worker_id, "count": held or None},
                )
        return worker_id == self.worker_id

    def _record_failure(
        self,
        error: BaseException,
        job_id: int,
        attempt: int,
        worker_id: str,
        task: Task,
        queue_name: str,
        limit: int,
        duration: float,
        payload_text: str,
    ) -> None:
        row: Row = (job_id, task.name, queue_name, attempt, limit, payload_text)
        submit = self._completer.submit
        if isinstance(error, RetryLater):
            # One more attempt instead of a refund: attempts only grow, so the fence on
            # (worker_id, attempts) stays unique to each claim.
            submit(
                Ending(
                    job_id,
                    attempt,
                    worker_id,
                    "pending",
                    delay=error.delay,
                    max_attempts=min(limit + 1, MAX_MAX_ATTEMPTS),
                )
            )
            self._log_end(
                logging.INFO, "job rescheduled", row, duration, "pending", delay=error.delay
            )
            status = "rescheduled"
        else:
            summary, detail = describe_failure(error, self._redact)
            if isinstance(error, PermanentError) or attempt >= limit:
                submit(Ending(job_id, attempt, worker_id, "failed", error=detail, summary=summary))
                self._log_end(logging.WARNING, "job failed", row, duration, "failed", error=summary)
                status = "failed"
            else:
                delay = task.retry.delay(attempt)
                submit(
                    Ending(
                        job_id, attempt, worker_id, "pending", delay=delay,
                        error=detail, summary=summary,
                    )
                )  # fmt: skip
                self._log_end(
                    logging.INFO, "job will retry", row, duration, "pending",
                    error=summary, delay=delay,
                )  # fmt: skip
                status = "retried"
        if self._on_job_end is not None:
            self._on_job_end(task.name, queue_name, status, duration)

    def _fail_now(self, row: Row, worker_id: str, reason: str, why: str) -> None:
        """Fail a job without running it, and without retries (unknown task, bad payload)."""
        text = storable(redact_text(self._redact, reason))
        self._completer.submit(
            Ending(row[0], row[3], worker_id, "failed", error=text, summary=text)
        )
        self._log_end(logging.WARNING, "job failed", row, None, "failed", error=text)
        if self._on_job_end is not None:
            self._on_job_end(row[1], row[2], "failed", 0.0)

    def _log_end(
        self,
        level: int,
        message: str,
        row: Row,
        duration: float | None,
        status: str,
        *,
        error: str | None = None,
        delay: float | None = None,
    ) -> None:
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "job_id": row[0],
            "task": row[1],
            "queue": row[2],
            "attempt": row[3],
            "duration_ms": None if duration is None else round(duration * 1000, 3),
            "worker_id": self.worker_id,
            "status": status,
            "error": error,
            "delay_s": None if delay is None else round(delay, 3),
            "payload": self._loggable(row[5]),
        }
        log.log(level, message, extra=fields)

    def _loggable(self, payload_text: str) -> str | None:
        """The payload for a job log line: None (left out) unless --log-payloads."""
        if not self._log_payloads:
            return None
        if len(payload_text) > MAX_LOGGED_PAYLOAD_CHARS:
            return payload_text[:MAX_LOGGED_PAYLOAD_CHARS] + "... (truncated)"
        return payload_text

    # --- watchdog, shutdown -----------------------------------------------------------------

    def check_timeouts(self) -> int:
        """Record a timeout for every attempt past its deadline; returns how many."""
        now = time.monotonic()
        count = 0
        for slot in self._slots:
            if slot.job is None or slot.timed_out or now < slot.deadline:
                continue
            job = slot.take_over()
            if job is None:
                continue
            slot.cancelled.set()
            job_id, attempt, worker_id, task, queue_name, limit, started, payload_text = job
            error = TimeoutError(f"timed out after {task.timeout:g} s")
            average = self._avg_duration
            self._avg_duration = (
                task.timeout if average is None else average + 0.2 * (task.timeout - average)
            )
            self._record_failure(
                error, job_id, attempt, worker_id, task, queue_name, limit, now - started,
                payload_text,
            )  # fmt: skip
            count += 1
        self.give_back_excess()
        return count

    def finishing_rate(self) -> float | None:
        """Jobs per second the threads finished over the last RATE_WINDOW s (None: too early).

        Called by the watchdog only, every WATCHDOG_INTERVAL s, which records the samples.
        """
        now = time.monotonic()
        samples = self._rate_samples
        samples.append((now, self._finished))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        first_time, first_count = samples[0]
        if now - first_time < RATE_WINDOW:
            return None
        return (self._finished - first_count) / (now - first_time)

    def give_back_excess(self) -> int:
        """Return buffered jobs that would wait more than GIVE_BACK_HORIZON s to start.

        Jobs prefetched while handlers were fast would otherwise wait behind slow ones while
        idle workers could run them. They go back due at once, their attempt refunded (they
        never ran), as reconcilable give-backs (see Ending.reconcile).
        """
        rate = self.finishing_rate()
        if rate is None:
            return 0
        excess = self._buffer.qsize() - int(rate * GIVE_BACK_HORIZON)
        if excess <= 0:
            return 0
        rows = self._take_buffered(excess)
        if rows and self.on_given_back is not None:
            self.on_given_back([row[0] for row in rows])
        for row in rows:
            self._completer.submit(
                Ending(row[0], row[3], self.worker_id, "pending", refund=1, reconcile=True)
            )
        if rows:
            log.info(
                "handlers turned slow: gave prefetched jobs back to the queue",
                extra={"count": len(rows), "worker_id": self.worker_id},
            )
        return len(rows)

    def hand_back_buffered(self) -> int:
        """Give every buffered (not started) job back to the queue, its attempt refunded."""
        rows = self._take_buffered(None)
        for row in rows:
            self._completer.submit(Ending(row[0], row[3], self.worker_id, "pending", refund=1))
        return len(rows)

    def _take_buffered(self, limit: int | None) -> list[Row]:
        """Take up to `limit` (None: all) jobs out of the buffer, before any thread starts them.

        Rows claimed under an id since declared dead are dropped (they were rescued).
        """
        taken: list[Row] = []
        count = 0
        while limit is None or count < limit:
            try:
                item = self._buffer.get_nowait()
            except queue.Empty:
                break
            if item is None:  # a thread's stop signal: leave it for the thread
                self._buffer.put(None)
                break
            count += 1
            self._release()
            row, worker_id = item
            if worker_id == self.worker_id:
                taken.append(row)
        return taken

    def hand_back_running(self, reason: str) -> int:
        """Give back every attempt still running (shutdown timeout): pending, attempt refunded."""
        count = 0
        for slot in self._slots:
            job = slot.take_over()
            if job is None:
                continue
            slot.cancelled.set()
            job_id, attempt, worker_id = job[:3]
            self._completer.submit(
                Ending(
                    job_id, attempt, worker_id, "pending", refund=1, error=reason, summary=reason
                )
            )
            count += 1
        return count

    def cancel(self, job_ids: set[int]) -> int:
        """Set the `cancelled` event of the running attempts of these jobs."""
        count = 0
        for slot in self._slots:
            job = slot.job
            if job is not None and job[0] in job_ids:
                slot.cancelled.set()
                count += 1
        return count
