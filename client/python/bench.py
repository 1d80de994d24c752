#!/usr/bin/env python3
"""bench.py -- the Python client against Python's own sqlite3 on the same work.

Reports, never asserts (figures depend on the machine and its disk).
sqlite3 runs with journal_mode=WAL and synchronous=FULL (every COMMIT
fsynced), maosd with durability sync (every commit group fsynced before
any of its writers is answered), on the same disk.
  durable   N appends one at a time (maos.Client: each reply after its
            commit group is fsynced) vs N sqlite3 INSERTs with a COMMIT
            each
  pipelined N single-event appends in flight at once, each acknowledged
            only when durable (maos.AsyncClient.append_batch) vs the same N
            INSERTs in ONE sqlite3 transaction (one fsync: the best sqlite3
            can do, though one transaction is not N independent durable
            writes)
  pipelined_gather  the same as asyncio.gather of maos.AsyncClient.append
            calls, `--window` at a time (a task per append, as naive
            asyncio code does)
  pipelined_sync  the same with maos.Client.append_batch (no asyncio)
  bulk      the N events loaded with maos.Client.append_many (each stream's
            run of 100 events one append, pipelined) vs the same one sqlite3
            transaction: bulk loading both ways
  replay    reading all N events back into maos.Event values (read_all,
            paged) vs SELECT of all N rows + json.loads of their data
  replay_events   sqlite3 building the same maos.Event values (uuid, aware
            datetime) as the client hands out: like for like
Data per event: a small JSON-like dict (~60 bytes), one stream per 100
events (sqlite3: one table with an index on (stream, version); each
INSERT looks up the stream's next version, as an append does).

    python3 bench.py [--maosd build/daemon/maosd | --socket PATH] [-n 20000] [--runs 5]

With --runs R each work runs R times (a fresh maosd and sqlite3 file each
time) and the median of each figure is printed with the range of the
ratio: a machine shared with builds is noisy.

Without --socket it starts its own maosd (durability sync) in a temp
directory next to the sqlite3 file, so both write to the same disk.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import maos  # noqa: E402
from maos.types import us_to_datetime  # noqa: E402


def payload(i: int) -> dict[str, Any]:
    return {"task": i, "state": "done", "agent": "writer-1", "score": i % 7}


def timed(f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def start_maosd(binary: str, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = os.path.join(tmp, "maosd.sock")
    p = subprocess.Popen([binary, "--data-dir", os.path.join(tmp, "data"), "--socket", sock,
                          "--log-level", "warn"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            maos.Client(sock, reconnect=False).close()
            return p, sock
        except maos.ConnectionLost:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("maosd did not start")


def bench_maos(sock: str, n: int, window: int, run: str) -> dict[str, float]:
    r: dict[str, float] = {}
    with maos.Client(sock) as c:
        def durable() -> None:
            for i in range(n):
                c.append(f"d{run}-{i // 100}", [{"type": "t", "data": payload(i)}])
        r["durable"] = timed(durable)

    async def pipelined() -> None:
        async with maos.AsyncClient(sock) as a:
            res = await a.append_batch([(f"p{run}-{i // 100}", [{"type": "t",
                                                                 "data": payload(i)}])
                                        for i in range(n)])
            assert len(res) == n
    r["pipelined"] = timed(lambda: asyncio.run(pipelined()))
    # replayed before the rows below are written: the log then holds what
    # the sqlite3 file holds (the durable and pipelined events), and both
    # sides scan it with the same prefix filter
    with maos.Client(sock) as c:
        def replay() -> None:
            k = sum(1 for _ in c.read_all(prefix=f"p{run}-"))  # the default pages
            assert k == n, k
        r["replay"] = timed(replay)
    r["replay_events"] = r["replay"]

    async def gathered() -> None:
        async with maos.AsyncClient(sock) as a:
            # windows of `window` appends; the next window is sent before the
            # one before is answered (two in flight), so maosd always has work
            prev: Optional[asyncio.Future[Any]] = None
            for lo in range(0, n, window):
                cur = asyncio.gather(*(a.append(f"g{run}-{i // 100}",
                                                [{"type": "t", "data": payload(i)}])
                                       for i in range(lo, min(n, lo + window))))
                if prev is not None:
                    await prev
                prev = cur
            if prev is not None:
                await prev
    r["pipelined_gather"] = timed(lambda: asyncio.run(gathered()))
    with maos.Client(sock) as c:
        r["pipelined_sync"] = timed(lambda: c.append_batch(
            [(f"b{run}-{i // 100}", [{"type": "t", "data": payload(i)}]) for i in range(n)]))
        r["bulk"] = timed(lambda: c.append_many(
            (f"m{run}-{i // 100}", {"type": "t", "data": payload(i)}) for i in range(n)))
    return r


def bench_sqlite(tmp: str, n: int) -> dict[str, float]:
    r: dict[str, float] = {}
    path = os.path.join(tmp, "bench.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT, version INT,"
               " type TEXT, data TEXT, time INT)")
    db.execute("CREATE UNIQUE INDEX by_stream ON events (stream, version)")

    def insert(stream: str, i: int) -> None:
        v = db.execute("SELECT COALESCE(MAX(version) + 1, 0) FROM events WHERE stream = ?",
                       (stream,)).fetchone()[0]
        db.execute("INSERT INTO events (stream, version, type, data, time) VALUES (?,?,?,?,?)",
                   (stream, v, "t", json.dumps(payload(i)), time.time_ns() // 1000))

    def durable() -> None:
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            insert(f"d-{i // 100}", i)
            db.execute("COMMIT")
    r["durable"] = timed(durable)

    def one_txn() -> None:
        db.execute("BEGIN IMMEDIATE")
        for i in range(n):
            insert(f"p-{i // 100}", i)
        db.execute("COMMIT")
    r["pipelined"] = timed(one_txn)

    def replay() -> None:
        rows = db.execute("SELECT position, stream, version, type, data, time FROM events"
                          " WHERE stream LIKE 'p-%' ORDER BY position").fetchall()
        k = sum(1 for row in rows if json.loads(row[4]) is not None)
        assert k == n, k
    r["replay"] = timed(replay)

    def replay_events() -> None:
        # what an agent needs from its own file: the same Event values
        rows = db.execute("SELECT position, stream, version, type, data, time FROM events"
                          " WHERE stream LIKE 'p-%' ORDER BY position").fetchall()
        evs = [maos.Event(position=p, stream=st, version=v, id=uuid.uuid4(), type=ty,
                          data=json.loads(d), meta={}, time=us_to_datetime(t))
               for p, st, v, ty, d, t in rows]
        assert len(evs) == n
    r["replay_events"] = timed(replay_events)
    r["pipelined_sync"] = r["pipelined_gather"] = r["bulk"] = r["pipelined"]
    db.close()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description="maos vs sqlite3 from Python (report only)")
    ap.add_argument("--maosd", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "build", "daemon", "maosd"))
    ap.add_argument("--socket", default=None)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=1, help="runs; medians are printed")
    ap.add_argument("--window", type=int, default=256, help="appends in flight (pipelined)")
    ap.add_argument("--dir", default=None, help="where the temp data lives (default: $TMPDIR)")
    args = ap.parse_args()
    works = ("durable", "pipelined", "pipelined_gather", "pipelined_sync", "bulk", "replay",
             "replay_events")
    runs: list[tuple[dict[str, float], dict[str, float]]] = []
    for _ in range(max(1, args.runs)):
        runs.append(one_run(args))
    ver = sqlite3.sqlite_version
    print(f"maos Python client vs sqlite3 {ver} (WAL, synchronous=FULL), n={args.n}, "
          f"window={args.window}, {len(runs)} run(s), medians")
    print(f"{'work':<17} {'maos ev/s':>10} {'sqlite3 ev/s':>13} {'maos/sqlite':>12}"
          f"{'  (min-max)' if len(runs) > 1 else ''}")
    for k in works:
        mr = [args.n / m[k] for m, _ in runs]
        sr = [args.n / s[k] for _, s in runs]
        ratio = [a / b for a, b in zip(mr, sr)]
        rng = f"  ({min(ratio):.2f}-{max(ratio):.2f})" if len(runs) > 1 else ""
        print(f"{k:<17} {statistics.median(mr):10.0f} {statistics.median(sr):13.0f} "
              f"{statistics.median(ratio):11.2f}x{rng}")


def one_run(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    tmp = tempfile.mkdtemp(prefix="maos-bench-py.", dir=args.dir)
    proc: Optional[subprocess.Popen[bytes]] = None
    try:
        sock = args.socket
        if sock is None:
            proc, sock = start_maosd(os.path.abspath(args.maosd), tmp)
        run = f"{os.getpid()}.{time.monotonic_ns()}"
        return bench_maos(sock, args.n, args.window, run), bench_sqlite(tmp, args.n)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
