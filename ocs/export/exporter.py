"""``ocs export``: the charged-session exporter process (follow or --once).

Exactly-once protocol (DESIGN.md "Data flow" 4). The exporter reads every
partition's stream of its feed (charged records, or audit entries:
:mod:`ocs.export.feeds`; ``ocs export`` runs one exporter per feed) through
one consumer group; several exporters sharing the group (and the output
directory) split the entries between them.

* An entry is acknowledged (XACK) only after the batch holding its rows is
  on disk: files written, flushed and fsync'd in ``.tmp/``, published by one
  atomic rename, the period directory fsync'd (:mod:`ocs.export.layout`).
  Nothing acknowledged is missing from disk.
* A batch directory is named by its partition and first/last entry ids and
  its ``batch.json`` lists the exact entry ids it holds. An entry delivered
  before (pending after a ``kill -9``, or taken over from another exporter)
  is first looked up there: found, it is only acknowledged; not found, it is
  written. An entry read fresh (``>``) was never delivered, so it cannot be
  on disk. After a crash at any instant each pending entry is therefore
  either on disk (ack) or not (write): none lost, none twice.
* Before publishing, the exporter checks in one Lua call that it still owns
  every entry of the batch and resets their idle time (fence): a takeover
  needs ``claim_idle_seconds`` of idleness, far longer than one rename.
* Start-up reconciliation: own pending history, entries of consumers of this
  host whose process is gone (taken at once), and entries idle longer than
  ``claim_idle_seconds`` at any consumer (XAUTOCLAIM, also every
  ``claim_interval``). Staging leftovers of dead writers are removed.
* A disk or Redis failure stops reading and acknowledging; the batch is
  retried with exponential backoff while ``health()`` reports it.
* A period closes (summary, then manifest) once Redis time is past its end
  plus the grace and every partition has acknowledged all entries before
  that instant (:mod:`ocs.export.manifest`). Acknowledged entries older than
  the retention are trimmed (XTRIM MINID, never at or above the group's
  oldest unacknowledged entry).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
import structlog

from ocs.export import metrics
from ocs.export.commit import CommitStats, Committer
from ocs.export.config import ExportConfig
from ocs.export.consumer import consumer_of_token, is_dead_local, new_consumer_name, staging_token
from ocs.export.feeds import RECORDS, Feed
from ocs.export.layout import Layout, id_key
from ocs.export.manifest import close_period
from ocs.export.money import Currencies
from ocs.export.periods import PeriodSpec
from ocs.export.rows import RowStyle
from ocs.export.streams import Entry, GroupStreams, partition_count
from ocs.store.client import SyncStore
from ocs.store.keys import DEFAULT_PARTITIONS, META_PARTITIONS, AccountKeys

log = structlog.get_logger("ocs.export")

HOUSEKEEPING_INTERVAL = 1.0
# A cluster failing over or resharding says "not now" with these (redis-py's
# cluster client has retried already): back off and try again, as for a lost connection.
FAILURES = (
    OSError,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
)


class Exporter:
    """One exporter process's state: buffers per partition, health, timers."""

    def __init__(
        self,
        client: SyncStore,
        cfg: ExportConfig,
        consumer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        feed: Feed = RECORDS,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.feed = feed
        self.m = feed.metrics
        self.consumer = consumer or new_consumer_name()
        self.token = staging_token(self.consumer)
        self.spec = PeriodSpec(cfg.period, cfg.zone, cfg.close_grace_seconds)
        self.layout = Layout(cfg.output_dir, cfg.formats, feed)
        self.currencies = Currencies(cfg.currency_exponents, cfg.default_currency_exponent)
        self.style = RowStyle(cfg.zone, self.currencies, cfg.mask_identities, cfg.mask_keep_last)
        self.clock = clock
        self.stats = CommitStats()
        self._stop = threading.Event()
        self._buffers: dict[int, dict[str, Entry]] = {}
        self._since: dict[int, float] = {}
        self._failure: str | None = None
        self._failures_in_row = 0
        self._retry_at = 0.0
        self._lag = 0.0
        self.streams: GroupStreams | None = None
        self._disk_ready = False
        self._next: dict[str, float] = {}
        self._closed: set[str] = set()  # period labels known closed

    # -- lifecycle -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this)."""
        self._stop.set()

    def start(self) -> None:
        self.client.set(META_PARTITIONS, DEFAULT_PARTITIONS, nx=True)
        partitions = partition_count(self.client)
        self.streams = GroupStreams(
            self.client,
            self.cfg.group,
            self.consumer,
            partitions,
            self.feed.stream,
            self.feed.dead_stream,
        )
        self.streams.ensure_groups()
        self._guarded(self._prepare_disk)
        self.reconcile()
        log.info(
            "export_started",
            feed=self.feed.name,
            consumer=self.consumer,
            partitions=partitions,
            output=str(self.cfg.output_dir),
        )

    def _prepare_disk(self) -> None:
        """Create or check the output directory; remove dead writers' staging."""
        meta = {
            "period": self.cfg.period,
            "timezone": self.cfg.timezone,
            "close_grace_seconds": self.cfg.close_grace_seconds,
        }
        self.layout.ensure(meta, self.token)
        self.layout.cleanup_staging(lambda t: is_dead_local(consumer_of_token(t)))
        for label in self.layout.period_labels():
            period = self.spec.parse(label)
            if period and self.layout.is_closed(label) and self.layout.batches(label):
                # A close interrupted after its manifest: finish it.
                close_period(self.layout, self.spec, period, self.currencies.exponent, self.token)
        self._disk_ready = True

    def run(self, once: bool = False) -> int:
        """Follow (until stop()) or drain (``once``); returns the exit status."""
        self.start()
        # --once drains what was there at start: entries arriving meanwhile
        # may be written too, but never keep it running.
        target = self._streams().last_ids() if once else {}
        self._next = dict.fromkeys(("claim", "house", "trim"), self.clock())
        while not self._stop.is_set():
            if self._failure is not None:
                if once and self._failures_in_row >= self.cfg.once_max_attempts:
                    return self._give_up()
                wait = self._retry_at - self.clock()
                if wait > 0:
                    self._stop.wait(min(wait, self.cfg.poll_interval))
                    continue
            try:
                got, drained = self._iterate(once, target)
            except FAILURES as exc:
                self._fail(exc)  # back off, then retry from the top
                continue
            self._recovered()
            if drained and not self.buffered():
                break
            if not got:
                self._stop.wait(self.cfg.poll_interval)
        return self._finish()

    def _iterate(self, once: bool, target: dict[int, str]) -> tuple[int, bool]:
        """One round: read, claim, write, close, trim.

        Returns the entries read and, for --once, whether every entry up to
        the target was delivered before this round (then nothing is read).
        A partition whose buffer is full is not read, so reading nothing
        does not mean drained.
        """
        now = self.clock()
        if self._failure is not None and self.buffered():
            self.flush(force=True)  # retry what failed before reading more
        drained = once and self._reached(target)
        got = 0 if drained else self.poll()
        if now >= self._next["claim"]:
            self.claim_idle()
            self._next["claim"] = now + self.cfg.claim_interval
        self.flush(force=once and (drained or not got))
        if now >= self._next["house"] or drained:
            self.housekeeping()
            self._next["house"] = now + HOUSEKEEPING_INTERVAL
        if now >= self._next["trim"]:
            self.trim()
            self._next["trim"] = now + self.cfg.trim_interval
        return got, drained

    def _reached(self, target: dict[int, str]) -> bool:
        """Has the group been delivered every entry up to ``target`` (per partition)?"""
        s = self._streams()
        return all(id_key(s.last_delivered(p)) >= id_key(last) for p, last in target.items())

    def _finish(self) -> int:
        if self._failure is None:
            self._guarded(functools.partial(self.flush, force=True))
        if self._failure is None:
            self._guarded(self.housekeeping)
        if self.streams is not None and not self.buffered():
            self._guarded(self._leave_group)
        log.info(
            "export_stopped",
            feed=self.feed.name,
            consumer=self.consumer,
            records=self.stats.records,
            dead_letters=self.stats.dead_letters,
            failure=self._failure,
        )
        return 0 if self._failure is None else 1

    def _leave_group(self) -> None:
        """Delete this consumer from every partition's group if it owns nothing."""
        s = self._streams()
        for p in range(s.partitions):
            s.drop_consumer_if_empty(p, self.consumer)

    def _give_up(self) -> int:
        log.error(
            "export_gave_up",
            feed=self.feed.name,
            reason=self._failure,
            attempts=self._failures_in_row,
        )
        return 1

    def _guarded(self, step: Callable[[], Any]) -> Any:
        """Run a step; a disk or Redis failure arms the backoff instead of raising."""
        try:
            result = step()
        except FAILURES as exc:
            self._fail(exc)
            return None
        return result

    def _fail(self, exc: BaseException) -> None:
        self._failures_in_row += 1
        delay = min(
            self.cfg.backoff_max, self.cfg.backoff_initial * 2 ** (self._failures_in_row - 1)
        )
        self._retry_at = self.clock() + delay
        self._failure = f"{type(exc).__name__}: {exc}"
        self.m.write_errors.inc()
        self.m.healthy.set(0)
        log.error(
            "export_write_failed",
            feed=self.feed.name,
            reason=self._failure,
            retry_in=delay,
            buffered=self.buffered(),
        )

    def _recovered(self) -> None:
        if self._failure is not None:
            log.info("export_recovered", feed=self.feed.name, after=self._failures_in_row)
        self._failure = None
        self._failures_in_row = 0
        self.m.healthy.set(1)

    # -- health ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """For /health: ``ok`` false while writes fail (nothing is acknowledged then)."""
        return {
            "ok": self._failure is None,
            "status": "ok" if self._failure is None else "failing",
            "reason": self._failure,
            "consecutive_failures": self._failures_in_row,
            "buffered": self.buffered(),
            "lag_seconds": self._lag,
            "consumer": self.consumer,
        }

    # -- reading ---------------------------------------------------------------

    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def _add(self, entries: list[Entry]) -> int:
        now = self.clock()
        for e in entries:
            buf = self._buffers.setdefault(e.partition, {})
            old = buf.get(e.entry_id)
            if old is None or (e.reclaimed and not old.reclaimed):
                buf[e.entry_id] = e
            self._since.setdefault(e.partition, now)
        return len(entries)

    def _streams(self) -> GroupStreams:
        assert self.streams is not None, "start() first"
        return self.streams

    def poll(self) -> int:
        """Read new entries into partitions whose buffer has room."""
        s = self._streams()
        room = [
            p for p in range(s.partitions) if len(self._buffers.get(p, ())) < self.cfg.batch_size
        ]
        return self._add(s.read_new(room, self.cfg.batch_size)) if room else 0

    def reconcile(self) -> None:
        """Take back own pending entries, those of dead local exporters, and idle ones."""
        s = self._streams()
        for p in range(s.partitions):
            self._add(s.own_pending(p, 100_000))
            for c in s.consumers(p):
                if c.name != self.consumer and c.pending and is_dead_local(c.name):
                    while got := s.claim_from(p, c.name, self.cfg.batch_size):
                        self._add(got)
                if c.name != self.consumer and is_dead_local(c.name):
                    s.drop_consumer_if_empty(p, c.name)
        self.claim_idle()

    def claim_idle(self) -> None:
        """Take entries idle past claim_idle at any consumer; forget empty silent consumers.

        A consumer silent that long is presumed dead (a live exporter polls
        every poll_interval); one that owns nothing is deleted so restarts on
        other hosts do not pile up in the group (the Lua check makes this
        safe against a consumer that reads meanwhile: it would own entries).
        """
        s = self._streams()
        idle_ms = int(self.cfg.claim_idle_seconds * 1000)
        for p in range(s.partitions):
            self._add(s.autoclaim(p, idle_ms, self.cfg.batch_size))
            for c in s.consumers(p):
                if c.name != self.consumer and c.pending == 0 and c.idle_ms > idle_ms:
                    s.drop_consumer_if_empty(p, c.name)

    # -- writing ---------------------------------------------------------------

    def flush(self, force: bool = False) -> None:
        """Commit every partition buffer that is full, old enough, or all if ``force``."""
        if not self._disk_ready:
            self._prepare_disk()
        now = self.clock()
        for p in sorted(self._buffers):
            buf = self._buffers[p]
            if not buf:
                continue
            age = now - self._since.get(p, now)
            if force or len(buf) >= self.cfg.batch_size or age >= self.cfg.max_batch_age:
                self._commit(p, buf)

    def _commit(self, p: int, buf: dict[str, Entry]) -> None:
        committer = Committer(
            self._streams(), self.layout, self.spec, self.style, self.token, excluded=self.excluded
        )
        try:
            stats = committer.commit(p, list(buf.values()))
            self.stats.add(stats)
        finally:
            for entry_id in committer.done:
                buf.pop(entry_id, None)
            if not buf:
                self._since.pop(p, None)

    def excluded(self, accounts: Iterable[str]) -> set[str]:
        """Load-test accounts among ``accounts`` (export.exclude_test_accounts):
        flagged ``test`` in their hash at creation (``ocs loadtest``); a
        deleted account keeps its hash, so its late records are left out too."""
        if not self.cfg.exclude_test_accounts:
            return set()
        names = sorted(accounts)
        s = self._streams()
        pipe = self.client.pipeline(transaction=False)
        for account in names:
            pipe.hget(AccountKeys(account, s.partitions).account, "test")
        flags: list[Any] = pipe.execute()
        return {a for a, flag in zip(names, flags, strict=True) if flag not in (None, b"0")}

    # -- periods, lag, trim ----------------------------------------------------

    def housekeeping(self) -> None:
        """Update the lag gauge and close every period that is complete."""
        s = self._streams()
        now_ms = s.time_ms()
        oldest = [s.oldest_unacked(p) for p in range(s.partitions)]
        ages = [now_ms - id_key(o)[0] for o in oldest if o is not None]
        self._lag = max(ages, default=0) / 1000
        self.m.lag.set(self._lag)
        floor = min((id_key(o)[0] for o in oldest if o is not None), default=None)
        for label in self.layout.period_labels():
            if label in self._closed:
                continue  # a closed period never reopens
            period = self.spec.parse(label)
            if period is None or self.layout.is_closed(label):
                self._closed.add(label)
                continue
            mark = self.spec.close_watermark_ms(period)
            if now_ms >= mark and (floor is None or floor >= mark):
                manifest = close_period(
                    self.layout, self.spec, period, self.currencies.exponent, self.token
                )
                self._closed.add(label)
                if manifest is None:
                    continue  # another exporter closed it meanwhile
                self.m.periods_closed.inc()
                metrics.FILES_WRITTEN.labels("period").inc(len(manifest["files"]) + 1)
                log.info("export_period_closed", feed=self.feed.name, period=label)

    def trim(self) -> None:
        """XTRIM MINID below min(now - retention, oldest unacknowledged entry)."""
        if self.cfg.retention_seconds <= 0:
            return
        s = self._streams()
        cutoff = (s.time_ms() - self.cfg.retention_seconds * 1000, 0)
        for p in range(s.partitions):
            oldest = s.oldest_unacked(p)
            if oldest is None:
                ms, seq = id_key(s.last_delivered(p))
                bound = (ms, seq + 1)
            else:
                bound = id_key(oldest)
            ms, seq = min(cutoff, bound)
            if ms > 0:
                s.trim_below(p, f"{ms}-{seq}")
