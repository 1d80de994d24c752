"""Every call of maos.AsyncClient against a real maosd (plain asyncio.run,
so no plugin is needed), pipelining included."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import pytest

import maos
from maos import _core as C


def run(f: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(f(), 120))


def test_issue_example_async(sock: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAOS_SOCKET", sock)

    async def main() -> None:
        with maos.Client() as c:
            c.append("task-1", [{"type": "created", "data": {"title": "x"}}], expect="no_stream")
        async with maos.AsyncClient() as a:
            n = 0
            async for ev in a.subscribe(stream="task-1", start="start"):
                assert isinstance(ev, maos.Event)
                assert (ev.position, ev.version, ev.type) == (1, 0, "created")
                n += 1
                break
            assert n == 1
    run(main)


def test_pipelined_appends_matched_by_rid(sock: str) -> None:
    async def main() -> None:
        async with maos.AsyncClient(sock) as a:
            res = await asyncio.gather(*(a.append(f"p-{i % 7}", [{"type": "t", "data": i}])
                                         for i in range(2000)))
            assert len(res) == 2000
            # each reply went to its own request: stream and data agree
            for i, r in enumerate(res):
                assert r.stream == f"p-{i % 7}" and r.count == 1
            assert sorted(r.first_position for r in res) == list(range(1, 2001))
            byp = {r.first_position: i for i, r in enumerate(res)}
            async for ev in a.read_all(page_size=500):
                assert ev.data == byp[ev.position]
            batch = await a.append_batch([("q-1", [{"type": "x"}])] * 10)
            assert [b.first_version for b in batch] == list(range(10))
    run(main)


def test_every_call_async(sock: str) -> None:
    async def main() -> None:
        async with maos.AsyncClient(sock) as a, maos.AsyncClient(sock) as b:
            await a.ping()
            r = await a.append("task-1", [{"type": "a", "data": {"x": 1}}], expect="no_stream")
            with pytest.raises(maos.WrongExpectedVersion) as ei:
                await a.append("task-1", [{"type": "t"}], expect=7)
            assert ei.value.actual == 0
            assert [e.version async for e in a.read("task-1")] == [0]
            assert [e.position async for e in a.read_all(category="task")] == [r.first_position]
            assert [s.stream async for s in a.streams("task-")] == ["task-1"]
            st = await a.stats()
            assert st["head_position"] == 1
            tr = await a.txn([{"stream": "t-1", "events": [{"type": "a"}]}])
            assert tr[0].stream == "t-1"
            tr = await a.txn(ops=[{"op": "put", "table": "kv.a", "key": "k", "data": {"v": 1}}])
            assert isinstance(tr[0], maos.PutResult)
            # subscribe with markers, live delivery
            sub = a.subscribe(prefix="task-", start="start", markers=True)
            first = await sub.next(timeout=10)
            assert isinstance(first, maos.Event) and first.stream == "task-1"
            assert isinstance(await sub.next(timeout=10), maos.CaughtUp) and sub.caught_up
            await b.append("task-2", [{"type": "live"}])
            ev = await sub.next(timeout=10)
            assert isinstance(ev, maos.Event) and ev.type == "live"
            await sub.close()
            # checkpoints, channels
            await a.checkpoint_save("c", 3)
            assert await a.checkpoint_get("c") == 3
            assert await a.checkpoint("none") is None
            async with a.subscribe_channel("ch.*") as ch:
                assert await b.publish("ch.1", [1, 2]) == 1
                assert await ch.next(timeout=10) == maos.Message("ch.1", [1, 2])
            # tables
            pr = await a.put("kv.t", "k1", {"a": 1})
            assert (await a.get("kv.t", "k1")).revision == pr.revision
            with pytest.raises(maos.WrongRevision):
                await a.put("kv.t", "k1", {"a": 2}, expect="absent")
            assert [e.key async for e in a.list("kv.t")] == ["k1"]
            assert await a.count("kv.t") == 1
            w = a.watch("kv.t")
            snap = await w.next(timeout=10)
            assert isinstance(snap, maos.Entry) and snap.key == "k1"
            dr = await b.delete("kv.t", "k1")
            ch2 = await w.next(timeout=10)
            assert isinstance(ch2, maos.Event) and ch2.type == "deleted" and ch2.position == dr
            await w.close()
            # agents, locks, sessions
            await a.agent_register("ag-1", kind="k")
            assert await a.agent_status("busy") > 0
            assert (await b.get("agents", "ag-1")).data["status"] == "busy"
            await a.agent_deregister("ag-1")
            tok = await a.lock("L")
            with pytest.raises(maos.WrongRevision):
                await b.lock("L")
            waiter = asyncio.create_task(b.lock("L", wait=20))
            await a.unlock("L", tok)
            assert await waiter > tok
            await a.session_open("s1")
            await a.session_close("s1", {"r": 1})
            assert (await a.get("sessions", "s1")).data["state"] == "closed"
            # queues
            er = await a.enqueue("q", [{"data": 1}, {"data": 2, "max_attempts": 1}])
            assert len(er.task_ids) == 2
            t = (await a.claim("q"))[0]
            assert await a.extend(t, 5000) is not None
            assert await a.ack(t, result=1) > 0
            with pytest.raises(maos.LeaseLost):
                await a.ack(t)
            t2 = (await a.claim("q"))[0]
            assert (await a.nack(t2, error="e")).state == "dead"
            assert [d.id async for d in a.dead_list("q")] == [t2.id]
            assert (await a.dead_retry("q")).count == 1
            t3 = (await a.claim("q"))[0]
            assert await a.release(t3) > 0
            assert (await a.task(t3.id)).state == "ready"
            assert (await a.queue_stats("q"))[0].ready == 1
            t4 = (await a.claim("q"))[0]
            await a.nack(t4)
            assert (await a.dead_purge("q")).count == 1
            with pytest.raises(maos.NotFound):
                await a.task(uuid.uuid4())
            # a waiting claim served by another client's enqueue
            waiting = asyncio.create_task(a.claim("wq", wait_ms=20000))
            await asyncio.sleep(0)       # let the claim be written first
            await a.ping()               # answered after maosd read the claim
            assert not waiting.done()
            await b.enqueue("wq", [{"data": "w"}])
            assert [x.data for x in await waiting] == ["w"]
            # a waiting claim whose caller gave up (cancelled) is still
            # parked in maosd and gets the next task: the client releases
            # it at once (it stayed leased to no one until its lease ran
            # out, 30 s, so the claim below found nothing)
            gone = asyncio.create_task(a.claim("cq", wait_ms=20000))
            await asyncio.sleep(0)
            await a.ping()               # the claim is parked
            gone.cancel()
            await b.enqueue("cq", [{"data": "c"}])
            got = await a.claim("cq", wait_ms=10000)
            assert [(x.data, x.attempt) for x in got] == [("c", 1)]
    run(main)


def test_async_append_batch_and_many(sock: str) -> None:
    """AsyncClient.append_batch: windows of PIPELINE_MAX futures, two in
    flight (a window of 7 over 500 appends in requests of 3), results in
    order; a refusal is
    raised after every reply, the rest stored; append_many groups runs of
    one stream."""
    async def main() -> None:
        async with maos.AsyncClient(sock) as a:
            a.PIPELINE_MAX = 7
            batch_appends = C.BATCH_APPENDS
            C.BATCH_APPENDS = 3  # 167 append_batch requests
            try:
                res = await a.append_batch([(f"w-{i % 5}", [{"type": "t", "data": i}])
                                            for i in range(500)])
            finally:
                C.BATCH_APPENDS = batch_appends
            assert [r.first_position for r in res] == list(range(1, 501))
            with pytest.raises(maos.WrongExpectedVersion):
                await a.append_batch([("r-1", [{"type": "t"}])] * 20, expect="no_stream")
            assert [e.version async for e in a.read("r-1")] == [0]
            many = await a.append_many([(f"m-{i // 30}", {"type": "t", "data": i})
                                        for i in range(90)], max_per_append=20)
            assert [(r.stream, r.count) for r in many] == \
                [(f"m-{k}", n) for k in range(3) for n in (20, 10)]
            assert [e.data async for e in a.read("m-2")] == list(range(60, 90))
            big = [("f-1", [{"type": "t", "data": b"\x00" * (17 << 20)}])]
            with pytest.raises(maos.FrameTooLarge):
                await a.append_batch([("f-0", [{"type": "t"}])] * 3 + big)
            with pytest.raises(maos.NotFound):  # nothing of the batch was sent
                [e async for e in a.read("f-0")]
            await a.ping()
    run(main)


def _requests(metrics: str, op: str) -> int:
    """maosd's count of answered requests of op (maos_request_duration_seconds)."""
    key = f'maos_request_duration_seconds_count{{op="{op}"}} '
    return sum(int(line[len(key):]) for line in metrics.splitlines() if line.startswith(key))


def test_async_appends_of_one_turn_share_a_request(sock: str) -> None:
    """append() calls made in one turn of the loop (asyncio.gather) go out
    as one append_batch request, each with its own answer as if sent
    alone: a wrong expect is refused alone; a reserved stream name, which
    maosd refuses for the whole request (with its index), is refused alone
    and the others are sent again; a lone append is an append request."""
    async def main() -> None:
        async with maos.AsyncClient(sock) as a:
            m0 = await a.metrics()
            res = await asyncio.gather(
                *(a.append("ab-1", [{"type": "t", "data": i}]) for i in range(50)),
                a.append("ab-2", [{"type": "t"}], expect=3),
                a.append("$ab-3", [{"type": "t"}]),
                a.append("ab-4", [{"type": "t"}]),
                return_exceptions=True)
            assert [r.first_version for r in res[:50]] == list(range(50))
            assert type(res[50]) is maos.WrongExpectedVersion and res[50].actual == -1
            assert type(res[51]) is maos.InvalidName
            assert res[52].first_version == 0 and res[52].stream == "ab-4"
            m1 = await a.metrics()
            assert _requests(m1, "append_batch") - _requests(m0, "append_batch") == 2
            assert _requests(m1, "append") == _requests(m0, "append")
            assert (await a.append("ab-2", [{"type": "t"}])).first_version == 0
            m2 = await a.metrics()
            assert _requests(m2, "append") == _requests(m1, "append") + 1
            assert [e.data async for e in a.read("ab-1")] == list(range(50))
            # two calls with the same event id: as if alone, the second is
            # the first's idempotent re-send
            ev = {"type": "t", "id": "0190f0f0-0000-7000-8000-00000000ab05"}
            r1, r2 = await asyncio.gather(a.append("ab-5", [ev]), a.append("ab-5", [ev]))
            assert r1.first_position == r2.first_position and r2.duplicate
    run(main)


def test_async_paging_reads_one_page_ahead(sock: str) -> None:
    """The next page is asked for before this page's events are handed
    out: calls inside the loop get their own replies, a loop left early
    cancels the page asked for ahead and the connection stays usable."""
    async def main() -> None:
        async with maos.AsyncClient(sock) as a:
            await a.append_many([("a-1", {"type": "t", "data": i}) for i in range(100)])
            seen = []
            async for ev in a.read("a-1", page_size=9):
                seen.append(ev.data)
                if ev.data % 10 == 0:
                    await a.append("b-1", [{"type": "t", "data": ev.data}])
            assert seen == list(range(100))
            assert [e.data async for e in a.read("b-1")] == list(range(0, 100, 10))
            it = a.read_all(page_size=10)
            async for ev in it:
                if ev.position == 15:
                    break
            await it.aclose()  # type: ignore[attr-defined]
            await a.ping()
            assert [e.data async for e in a.read_all(stream="a-1", page_size=30)] == \
                list(range(100))
    run(main)


def test_async_errors_do_not_break_pipeline(sock: str) -> None:
    async def main() -> None:
        async with maos.AsyncClient(sock) as a:
            calls = [a.append("e-1", [{"type": "x"}], expect="no_stream") for _ in range(20)]
            res = await asyncio.gather(*calls, return_exceptions=True)
            ok = [r for r in res if isinstance(r, maos.AppendResult)]
            bad = [r for r in res if isinstance(r, maos.WrongExpectedVersion)]
            assert len(ok) == 1 and len(bad) == 19 and all(b.actual == 0 for b in bad)
            with pytest.raises(maos.InvalidArgument):
                await a.append("e-1", [])
            # data msgpack cannot encode (a set): that append's own
            # InvalidArgument, alone or among others sent in the same turn
            # (it hung: msgpack's TypeError escaped the loop's callback)
            unenc = [{"type": "t", "data": {1, 2}}]
            with pytest.raises(maos.InvalidArgument):
                await asyncio.wait_for(a.append("e-2", unenc), 30)
            res = await asyncio.wait_for(asyncio.gather(
                a.append("e-2", [{"type": "a"}]), a.append("e-2", unenc),
                a.append("e-2", [{"type": "b"}]), return_exceptions=True), 30)
            assert isinstance(res[1], maos.InvalidArgument)
            assert [r.first_version for r in (res[0], res[2])] == [0, 1]  # type: ignore[union-attr]
            await a.ping()
    run(main)
