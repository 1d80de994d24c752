"""Resume across kill -9 and restart of maosd: no gap, no duplicate.

4 writer processes (_writer.py: event ids, re-sending after a lost
connection) write while a sync and an async subscriber (reconnect on)
read everything from the start; maosd is killed with SIGKILL and
restarted on the same data directory and socket three times, each time
after the head moved on.  Each subscriber must end with exactly read_all's
events (positions 1..N, equal events), each once, in order; the writers'
events are all stored exactly once (ids unique)."""
from __future__ import annotations

import asyncio
import threading
import time

import maos
from conftest import Daemon
from test_gapfree import PER_WRITER, WRITERS, wait_writers, writers

KILLS = 3


def head(c: maos.Client) -> int:
    """stats' head; a call that meets the lost connection fails (like the C
    client's) and the next one reconnects."""
    for _ in range(100):
        try:
            return int(c.stats()["head_position"])
        except maos.ConnectionLost:
            continue
    raise AssertionError("no stats after 100 attempts")


def test_resume_across_kill9(daemon: Daemon) -> None:
    sock = daemon.sock
    total = WRITERS * PER_WRITER
    got_sync: list[maos.Event] = []
    got_async: list[maos.Event] = []
    errs: list[BaseException] = []

    def sync_sub() -> None:
        try:
            with maos.Client(sock, reconnect_max=60) as c:
                sub = c.subscribe(start="start")
                while len(got_sync) < total:
                    ev = sub.next(timeout=120)
                    assert isinstance(ev, maos.Event), "sync subscriber starved"
                    got_sync.append(ev)
        except BaseException as e:
            errs.append(e)

    async def async_sub() -> None:
        async with maos.AsyncClient(sock, reconnect_max=60) as a:
            async for ev in a.subscribe(start="start"):
                assert isinstance(ev, maos.Event)
                got_async.append(ev)
                if len(got_async) == total:
                    break

    def async_thread() -> None:
        try:
            asyncio.run(asyncio.wait_for(async_sub(), 300))
        except BaseException as e:
            errs.append(e)

    ts = [threading.Thread(target=sync_sub), threading.Thread(target=async_thread)]
    for t in ts:
        t.start()
    ws = writers(sock, 7)
    ctl = maos.Client(sock, reconnect_max=60)
    deadline = time.monotonic() + 200
    for k in range(KILLS):
        target = (k + 1) * total // (KILLS + 2)
        while head(ctl) < target:
            assert time.monotonic() < deadline, "writers made no progress"
            time.sleep(0.005)  # polling a condition (the head), bounded by the deadline
        daemon.kill9()
        daemon.start()
    wait_writers(ws)
    for t in ts:
        t.join(300)
    assert not errs, errs
    head(ctl)
    ref = list(ctl.read_all())
    assert [e.position for e in ref] == list(range(1, total + 1))
    assert len({e.id for e in ref}) == total
    assert got_sync == ref, "sync subscriber: gap, duplicate or different events"
    assert got_async == ref, "async subscriber: gap, duplicate or different events"
    assert ctl.reconnects >= 1
    ctl.close()
