"""The gap-free subscription property through the Python client.

Per seed: 4 writer processes (_writer.py) append concurrently to 15
streams; meanwhile subscriptions are opened, sync and async, at random
moments from random points (start, end, a random existing position, a
version of one stream) with random filters.  When the writers are done
the test reads the head H and appends one sentinel event of every type
to every stream; every subscription then reads until it has an event
past H and must have received, up to H, exactly what read_all with the
same filter lists from the subscription's `from`: the same events, in
order, no gap, no duplicate.  Seeds: MAOS_PY_SEED or fixed ones; the seed
is in every failure message.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any, Optional

import pytest

import maos
from conftest import Daemon, make_daemon

HERE = os.path.dirname(os.path.abspath(__file__))
STREAMS = [f"task-{i}" for i in range(10)] + [f"job-{i}" for i in range(5)]
TYPES = ["created", "updated", "done"]
WRITERS = 4
PER_WRITER = 400
SEEDS = [int(os.environ["MAOS_PY_SEED"])] if os.environ.get("MAOS_PY_SEED") else [11, 12]


def writers(sock: str, seed: int, n: int = PER_WRITER) -> list[subprocess.Popen[str]]:
    env = dict(os.environ)
    return [subprocess.Popen([sys.executable, os.path.join(HERE, "_writer.py"), sock,
                              str(seed * 100 + w), str(n)], stdout=subprocess.PIPE, text=True,
                             env=env) for w in range(WRITERS)]


def wait_writers(ps: list[subprocess.Popen[str]], n: int = PER_WRITER) -> None:
    for p in ps:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and f"done {n}" in out, out


def random_sub_args(rng: random.Random, head: int, c: maos.Client) -> dict[str, Any]:
    kind = rng.choice(["none", "prefix", "category", "stream", "types", "combo", "version"])
    a: dict[str, Any] = {}
    if kind == "prefix":
        a["prefix"] = rng.choice(["task-", "job-", "task-1"])
    elif kind == "category":
        a["category"] = rng.choice(["task", "job"])
    elif kind == "stream":
        a["stream"] = rng.choice(STREAMS)
    elif kind == "types":
        a["types"] = rng.sample(TYPES, rng.randint(1, 2))
    elif kind == "combo":
        a["category"] = "task"
        a["types"] = [rng.choice(TYPES)]
    elif kind == "version":
        s = rng.choice(STREAMS)
        heads = {x.stream: x.head for x in c.streams()}
        a["stream"] = s
        a["from_version"] = rng.randint(0, heads.get(s, -1) + 1)
        return a
    a["start"] = rng.choice(["start", "end", max(1, rng.randint(1, head + 1)), head + 1])
    return a


def expected(c: maos.Client, a: dict[str, Any], from_pos: int, h: int) -> list[maos.Event]:
    if "from_version" in a:
        return [e for e in c.read(a["stream"], a["from_version"]) if e.position <= h]
    flt = {k: v for k, v in a.items() if k != "start"}
    return [e for e in c.read_all(from_pos, **flt) if e.position <= h]


def check(seed: int, name: str, got: list[maos.Event], exp: list[maos.Event]) -> None:
    print(name, len(got), len(exp))
    ps = [e.position for e in got]
    assert ps == sorted(set(ps)), f"seed {seed} {name}: out of order or duplicate"
    assert [e.position for e in got] == [e.position for e in exp], \
        f"seed {seed} {name}: positions differ (got {len(got)}, read_all {len(exp)})"
    assert got == exp, f"seed {seed} {name}: events differ"


@pytest.mark.parametrize("seed", SEEDS)
def test_gapfree_sync_and_async(daemon: Daemon, seed: int) -> None:
    rng = random.Random(seed)
    sock = daemon.sock
    ctl = maos.Client(sock)
    ctl.append_batch([(rng.choice(STREAMS), [{"type": rng.choice(TYPES)}]) for _ in range(200)])
    ws = writers(sock, seed)
    total = 200 + WRITERS * PER_WRITER
    subs: list[tuple[str, dict[str, Any], Any]] = []
    conns = [maos.Client(sock) for _ in range(2)]
    # async subscriptions run in their own thread and loop
    aresults: dict[int, tuple[int, list[maos.Event]]] = {}
    h_box: list[int] = []
    h_ready = threading.Event()
    aargs: list[dict[str, Any]] = []
    astarted = threading.Event()
    aerr: list[BaseException] = []

    async def amain() -> None:
        async with maos.AsyncClient(sock) as a:
            opened = []
            for i, args in enumerate(aargs):
                s = a.subscribe(**args)
                await s.start()
                opened.append((i, s))
            astarted.set()
            while not h_ready.is_set():
                await asyncio.sleep(0.01)  # waiting for the main thread's H (bounded below)
            h = h_box[0]

            async def take(i: int, s: maos.AsyncSubscription) -> None:
                got: list[maos.Event] = []
                while True:
                    ev = await s.next(timeout=120)
                    assert isinstance(ev, maos.Event), f"seed {seed}: async sub {i} starved"
                    if ev.position > h:
                        break
                    got.append(ev)
                aresults[i] = (s.from_position, got)
            await asyncio.gather(*(take(i, s) for i, s in opened))

    def athread() -> None:
        try:
            asyncio.run(asyncio.wait_for(amain(), 240))
        except BaseException as e:
            aerr.append(e)
            astarted.set()

    # open subscriptions at random moments while the writers write
    deadline = time.monotonic() + 120
    for i in range(8):
        target = 200 + rng.randint(0, WRITERS * PER_WRITER // 2)
        while ctl.stats()["head_position"] < target and any(w.poll() is None for w in ws):
            assert time.monotonic() < deadline
            time.sleep(0.005)  # polling a condition (the head), bounded by the deadline
        args = random_sub_args(rng, ctl.stats()["head_position"], ctl)
        if i % 4 == 3:
            aargs.append(args)
        else:
            subs.append((f"sync sub {i} {args}", args, conns[i % 2].subscribe(**args)))
    t = threading.Thread(target=athread)
    t.start()
    assert astarted.wait(60) and not aerr, aerr
    wait_writers(ws)
    h = ctl.stats()["head_position"]
    assert h == total
    for s in STREAMS:
        ctl.append(s, [{"type": ty} for ty in TYPES])
    h_box.append(h)
    h_ready.set()
    for name, args, sub in subs:
        got: list[maos.Event] = []
        while True:
            ev = sub.next(timeout=120)
            assert isinstance(ev, maos.Event), f"seed {seed} {name}: starved"
            if ev.position > h:
                break
            got.append(ev)
        check(seed, name, got, expected(ctl, args, sub.from_position, h))
    t.join(300)
    assert not aerr, aerr
    for i, args in enumerate(aargs):
        from_pos, got = aresults[i]
        check(seed, f"async sub {i} {args}", got, expected(ctl, args, from_pos, h))
    for c in conns:
        c.close()
    ctl.close()


def test_gapfree_fell_behind_still_gapfree() -> None:
    """A subscriber that does not read while much is written is switched to
    disk reads by maosd (fell_behind, visible on the subscription) and
    still gets everything in order, then catches up."""
    for daemon in make_daemon(["--max-output-mb", "1"]):
        _fell_behind(daemon)


def _fell_behind(daemon: Daemon) -> None:
    sock = daemon.sock
    with maos.Client(sock) as c, maos.Client(sock) as w:
        sub = c.subscribe(start="end", markers=True)
        big = "x" * 4000
        for _ in range(40):  # ~16 MB pushed at a subscriber that reads nothing
            w.append_batch([("fill-1", [{"type": "t", "data": big}] * 100)])
        h = w.stats()["head_position"]
        seen: list[int] = []
        states = []
        while len(seen) < h:
            it: Optional[Any] = sub.next(timeout=60)
            assert it is not None
            if isinstance(it, maos.Event):
                seen.append(it.position)
            else:
                states.append(type(it).__name__)
        assert seen == list(range(1, h + 1))
        assert sub.fell_behind >= 1 and "FellBehind" in states, states
        while not sub.caught_up:  # the disk reads end in caught_up
            assert sub.next(timeout=60) is not None
        assert states[0] == "CaughtUp"  # the first, at subscribe time (live end)
