#!/usr/bin/env python3
"""bench.py -- the Python client against Python's own sqlite3 on the same work.

Reports, never asserts (figures depend on the machine and its disk):
  durable   N appends one at a time (maos.Client: each reply after its
            commit group is fsynced) vs N sqlite3 INSERTs with a COMMIT
            each (WAL, synchronous=FULL: each fsynced)
  pipelined N appends in flight at once (maos.AsyncClient, `--window` at a
            time; each still acknowledged only when durable) vs the same N
            INSERTs in one sqlite3 transaction (the best sqlite3 can do,
            though one transaction is not N independent durable writes)
  pipelined_sync  the same with maos.Client.append_batch (no asyncio)
  replay    reading all N events back into maos.Event values (read_all,
            paged) vs SELECT of all N rows + json.loads of their data
  replay_events   sqlite3 building the same maos.Event values (uuid, aware
            datetime) as the client hands out: like for like
Data per event: a small JSON-like dict (~60 bytes), one stream per 100
events (sqlite3: one table with an index on (stream, version)).

    python3 bench.py [--maosd build/daemon/maosd | --socket PATH] [-n 2000]

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
            # windows of `window` appends; the next window is sent before the
            # one before is answered (two in flight), so maosd always has work
            prev: Optional[asyncio.Future[Any]] = None
            for lo in range(0, n, window):
                cur = asyncio.gather(*(a.append(f"p{run}-{i // 100}",
                                                [{"type": "t", "data": payload(i)}])
                                       for i in range(lo, min(n, lo + window))))
                if prev is not None:
                    await prev
                prev = cur
            if prev is not None:
                await prev
    r["pipelined"] = timed(lambda: asyncio.run(pipelined()))
    with maos.Client(sock) as c:
        r["pipelined_sync"] = timed(lambda: c.append_batch(
            [(f"b{run}-{i // 100}", [{"type": "t", "data": payload(i)}]) for i in range(n)]))
    with maos.Client(sock) as c:
        def replay() -> None:
            k = sum(1 for _ in c.read_all(prefix=f"p{run}-", page_size=10000))
            assert k == n, k
        r["replay"] = timed(replay)
    r["replay_events"] = r["replay"]
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
    r["pipelined_sync"] = r["pipelined"]
    db.close()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description="maos vs sqlite3 from Python (report only)")
    ap.add_argument("--maosd", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "build", "daemon", "maosd"))
    ap.add_argument("--socket", default=None)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--window", type=int, default=256, help="appends in flight (pipelined)")
    ap.add_argument("--dir", default=None, help="where the temp data lives (default: $TMPDIR)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="maos-bench-py.", dir=args.dir)
    proc: Optional[subprocess.Popen[bytes]] = None
    try:
        sock = args.socket
        if sock is None:
            proc, sock = start_maosd(os.path.abspath(args.maosd), tmp)
        run = str(os.getpid())
        m = bench_maos(sock, args.n, args.window, run)
        s = bench_sqlite(tmp, args.n)
        print(f"maos Python client vs sqlite3 {sqlite3.sqlite_version}, n={args.n}, "
              f"window={args.window}, data in {tmp}")
        print(f"{'work':<15} {'maos ev/s':>12} {'sqlite3 ev/s':>13} {'maos/sqlite':>12}")
        for k in ("durable", "pipelined", "pipelined_sync", "replay", "replay_events"):
            mr, sr = args.n / m[k], args.n / s[k]
            print(f"{k:<15} {mr:12.0f} {sr:13.0f} {mr / sr:11.2f}x")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
