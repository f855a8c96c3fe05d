"""The local disk spill: batches the sink could not take, kept as files and replayed oldest first.

Layout: ``<root>/<run id>/<seq>.batch``, one file per batch — a JSON header line (replica, run id, seq, time of the
oldest record, record count) followed by the batch's JSON Lines. A file is written to a temporary name and renamed,
so a crash mid-write never leaves a half batch that looks whole.

Each process spills under its own run id and holds an exclusive ``flock`` on ``<run id>/.lock`` for as long as it
lives. A process that finds a directory whose lock is free (its owner exited or crashed with batches left behind)
adopts it and replays those batches before its own: a restarted pod, a new Lambda instance reusing ``/tmp``, or a
second worker on the same host. Replayed batches keep their original identity, so their object names are the same
as on the first attempt and a batch that had in fact been stored is not stored twice.

Bounded by ``max_bytes``: :meth:`append` refuses a batch that would exceed it (the pipeline's policy then applies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from core.telemetry.sinks.base import Batch

logger = logging.getLogger("skyrelay.logs")


@dataclass(slots=True)
class SpilledBatch:
    path: Path
    records: int
    size: int


class DiskSpill:
    def __init__(self, root: Path, *, run_id: str, max_bytes: int) -> None:
        self.root = root
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self._own_dir = root / run_id
        self._index: deque[SpilledBatch] = deque()
        self._locks: dict[Path, IO[bytes]] = {}
        self._opened = False
        self._mutex = threading.RLock()  # methods run in worker threads; a cancelled await may leave one running

    # --- set-up (blocking: called through asyncio.to_thread) --------------------------------------------------
    def open(self) -> int:
        """Create this process's directory, adopt orphaned ones; returns how many orphaned records were found."""
        with self._mutex:
            if self._opened:
                return 0
            self._own_dir.mkdir(parents=True, exist_ok=True)
            self._lock(self._own_dir)
            self._opened = True
            return self.adopt_orphans()

    def adopt_orphans(self) -> int:
        with self._mutex:
            found = 0
            for directory in sorted(p for p in self.root.iterdir() if p.is_dir() and p not in self._locks):
                if not self._lock(directory, wait=False):
                    continue  # its owner is alive
                for path in sorted(directory.glob("*.batch")):
                    entry = self._index_file(path)
                    if entry is not None:
                        found += entry.records
                if not any(directory.glob("*.batch")):
                    self._release(directory)
            if found:
                logger.warning("adopted %d spilled log records left by an earlier process under %s", found, self.root)
            return found

    def _lock(self, directory: Path, *, wait: bool = True) -> bool:
        handle = open(directory / ".lock", "ab")  # held open for the life of the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        self._locks[directory] = handle
        return True

    def _release(self, directory: Path) -> None:
        handle = self._locks.pop(directory, None)
        if directory != self._own_dir:
            shutil.rmtree(directory, ignore_errors=True)
        if handle is not None:
            handle.close()

    def _index_file(self, path: Path) -> SpilledBatch | None:
        try:
            with open(path, "rb") as handle:
                header = orjson.loads(handle.readline())
            entry = SpilledBatch(path, int(header["records"]), path.stat().st_size)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("unreadable spill file %s (%s): left in place for inspection", path, type(exc).__name__)
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".unreadable"))
            return None
        self._index.append(entry)
        self.records += entry.records
        self.bytes += entry.size
        return entry

    # --- the pipeline's side ---------------------------------------------------------------------------------
    @property
    def batches(self) -> int:
        return len(self._index)

    def append(self, batch: Batch) -> bool:
        """Store a batch; False (nothing written) when it would exceed ``max_bytes`` or the disk refuses it."""
        with self._mutex:
            header = orjson.dumps({"replica": batch.replica, "run_id": batch.run_id, "seq": batch.seq,
                                   "first_ts": batch.first_ts, "records": len(batch.lines)})
            payload = header + b"\n" + batch.jsonl()
            if self.bytes + len(payload) > self.max_bytes:
                return False
            path = self._own_dir / f"{batch.seq:012d}.batch"
            if batch.run_id == self.run_id and any(e.path == path for e in self._index):
                return True  # already here: an earlier append finished after its caller stopped waiting
            temp = path.with_suffix(".tmp")
            try:
                temp.write_bytes(payload)
                os.replace(temp, path)
            except OSError as exc:
                logger.error("could not spill a log batch to %s: %s", self._own_dir, exc.strerror)
                with contextlib.suppress(OSError):
                    temp.unlink()
                return False
            self._index.append(SpilledBatch(path, len(batch.lines), len(payload)))
            self.records += len(batch.lines)
            self.bytes += len(payload)
            return True

    def oldest(self) -> tuple[SpilledBatch, Batch] | None:
        """The next batch to replay, read back from disk (its file stays until :meth:`remove`)."""
        with self._mutex:
            while self._index:
                entry = self._index[0]
                try:
                    with open(entry.path, "rb") as handle:
                        header = orjson.loads(handle.readline())
                        lines = tuple(line for line in handle.read().split(b"\n") if line)
                except (OSError, ValueError) as exc:
                    logger.error("spill file %s vanished or is unreadable (%s): skipped", entry.path,
                                 type(exc).__name__)
                    self._forget(entry)
                    continue
                batch = Batch(replica=header["replica"], run_id=header["run_id"], seq=int(header["seq"]),
                              first_ts=float(header["first_ts"]), lines=lines)
                return entry, batch
            return None

    def remove(self, entry: SpilledBatch) -> None:
        with self._mutex:
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
            self._forget(entry)
            directory = entry.path.parent
            if directory != self._own_dir and not any(e.path.parent == directory for e in self._index):
                self._release(directory)

    def _forget(self, entry: SpilledBatch) -> None:
        if self._index and self._index[0] is entry:
            self._index.popleft()
        else:
            with contextlib.suppress(ValueError):
                self._index.remove(entry)
        self.records -= entry.records
        self.bytes -= entry.size

    def close(self) -> None:
        """Release every lock; this process's directory is removed when it holds nothing."""
        with self._mutex:
            for directory in list(self._locks):
                if directory == self._own_dir and not any(directory.glob("*.batch")):
                    shutil.rmtree(directory, ignore_errors=True)
                self._release(directory)

