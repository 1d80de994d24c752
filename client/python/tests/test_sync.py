"""Every call of maos.Client against a real maosd, and what it returns."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

import maos
from maos import _core as C
from conftest import Daemon


def test_issue_example(sock: str) -> None:
    # the lines of issue 11, as written (socket from the argument)
    with maos.Client(sock) as c:
        c.append("task-1", [{"type": "created", "data": {"title": "x"}}], expect="no_stream")
        seen = [(ev.version, ev.type, ev.data) for ev in c.read("task-1")]
        assert seen == [(0, "created", {"title": "x"})]
        with pytest.raises(maos.WrongExpectedVersion) as ei:
            c.append("task-1", [{"type": "t", "data": {}}], expect=7)
        assert ei.value.actual == 0
        assert ei.value.code == "WRONG_EXPECTED_VERSION" and ei.value.message


def test_socket_from_env(sock: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAOS_SOCKET", sock)
    assert maos.default_socket() == sock
    with maos.Client() as c:
        c.ping()
        assert c.server.startswith("maosd")


def test_default_socket_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    monkeypatch.delenv("MAOS_SOCKET", raising=False)
    if os.geteuid() == 0:
        assert maos.default_socket() == "/run/maos/maosd.sock"
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/77")
        assert maos.default_socket() == "/run/user/77/maos/maosd.sock"
        monkeypatch.delenv("XDG_RUNTIME_DIR")
        assert maos.default_socket() == f"/tmp/maos-{os.geteuid()}/maosd.sock"


def test_append_event_fields(sock: str) -> None:
    eid = uuid.uuid4()
    with maos.Client(sock) as c:
        before = dt.datetime.now(dt.timezone.utc)
        r = c.append("order-7", [
            {"type": "placed", "data": {"n": 1, "l": [1, 2.5, None, True], "b": b"\x00\xff"},
             "meta": {"agent": "a1"}, "id": eid},
            {"type": "paid"},
            {"type": "shipped", "data": "text", "id": str(uuid.uuid4())},
        ], expect="no_stream")
        assert (r.stream, r.first_version, r.count, r.duplicate) == ("order-7", 0, 3, False)
        assert r.ids[0] == eid and len(r.ids) == 3 and r.last_version == 2
        evs = list(c.read("order-7"))
        assert [e.version for e in evs] == [0, 1, 2]
        assert [e.position for e in evs] == list(range(r.first_position, r.first_position + 3))
        e0 = evs[0]
        assert isinstance(e0, maos.Event) and e0.id == eid and isinstance(e0.id, uuid.UUID)
        assert e0.data == {"n": 1, "l": [1, 2.5, None, True], "b": b"\x00\xff"}
        assert e0.meta == {"agent": "a1"} and e0.stream == "order-7"
        assert e0.time.tzinfo is not None and e0.time >= before - dt.timedelta(seconds=5)
        assert evs[1].data is None and evs[1].meta == {}
        assert evs[2].data == "text"
        with pytest.raises(dataclasses_frozen()):
            e0.type = "x"  # type: ignore[misc]
        # expect exists / exact / any
        assert c.append("order-7", [{"type": "x"}], expect="exists").first_version == 3
        assert c.append("order-7", [{"type": "x"}], expect=3).first_version == 4
        assert c.append("order-7", [{"type": "x"}]).first_version == 5
        with pytest.raises(maos.WrongExpectedVersion) as ei:
            c.append("nope-1", [{"type": "x"}], expect="exists")
        assert ei.value.actual == -1


def dataclasses_frozen() -> type[Exception]:
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_decoded_values_are_the_constructed_ones(sock: str) -> None:
    """Events and append results are filled by the decoder without their
    constructors, id/time/ids built on first read (maos.types): they equal,
    print, copy, replace and pickle exactly as constructed ones."""
    import copy
    import dataclasses
    import pickle
    eid = uuid.uuid4()
    with maos.Client(sock) as c:
        r = c.append("vals-1", [{"type": "a", "id": eid, "data": {"k": [1, "x"]},
                                 "meta": {"m": 1}}, {"type": "b"}])
        assert r.ids[0] == eid and len(r.ids) == 2 and all(type(i) is uuid.UUID for i in r.ids)
        built = maos.AppendResult(stream=r.stream, first_version=r.first_version,
                                  first_position=r.first_position, count=r.count,
                                  duplicate=r.duplicate, ids=r.ids)
        assert r == built and repr(r) == repr(built) and hash(r) == hash(built)
        assert r.last_position == r.first_position + 1
        evs = list(c.read("vals-1"))
        for fresh in (list(c.read("vals-1")), evs):  # built before or on comparison
            e = fresh[0]
            made = maos.Event(position=e.position, stream=e.stream, version=e.version,
                              id=eid, type=e.type, data=e.data, meta=e.meta, time=e.time)
            assert e == made and repr(e) == repr(made)
        e = list(c.read("vals-1"))[0]
        assert pickle.loads(pickle.dumps(e)) == evs[0]
        assert copy.deepcopy(e) == evs[0] and copy.copy(e) == evs[0]
        assert dataclasses.asdict(e)["id"] == eid
        assert dataclasses.replace(e, type="z").id == eid
        t = e.time
        assert type(e.id) is uuid.UUID and e.id.version == 4 and e.id == eid
        assert t.tzinfo is not None and t is e.time  # built once
        with pytest.raises(AttributeError):
            e.nope  # type: ignore[attr-defined]
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.id = uuid.uuid4()  # type: ignore[misc]


def test_append_idempotent_and_conflict(sock: str) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    evs = [{"type": "a", "id": ids[0], "data": {"k": 1}}, {"type": "b", "id": ids[1]}]
    with maos.Client(sock) as c:
        r1 = c.append("idem-1", evs)
        r2 = c.append("idem-1", evs, expect="no_stream")
        assert r2.duplicate and r2.first_position == r1.first_position and r2.ids == r1.ids
        with pytest.raises(maos.Conflict):
            c.append("idem-2", evs)
        with pytest.raises(maos.BadRequest):
            c.append("idem-3", [{"type": "a", "id": ids[0]}, {"type": "b", "id": ids[0]}])


def test_append_batch_pipelined(sock: str) -> None:
    with maos.Client(sock) as c:
        res = c.append_batch([(f"b-{i % 3}", [{"type": "t", "data": i}]) for i in range(300)])
        assert len(res) == 300
        assert [r.first_position for r in res] == sorted(r.first_position for r in res)
        assert sum(1 for _ in c.read_all(stream="b-0")) == 100


def test_pipeline_window_slides(sock: str) -> None:
    """append_batch keeps PIPELINE_MAX requests in flight and refills the
    window as replies come (a window of 7 over 500 appends in requests of
    3: every reply in order); a refusal in the middle is raised after every
    reply is in and the appends around it are stored; an append over
    max_frame or not valid is refused before anything of its batch is
    sent; appends too big to share one request go in several, in order;
    the connection is still in step."""
    with maos.Client(sock) as c:
        c.PIPELINE_MAX = 7
        batch_appends = C.BATCH_APPENDS
        C.BATCH_APPENDS = 3  # 167 append_batch requests
        try:
            res = c.append_batch([(f"w-{i % 5}", [{"type": "t", "data": i}])
                                  for i in range(500)])
        finally:
            C.BATCH_APPENDS = batch_appends
        assert [r.first_position for r in res] == list(range(1, 501))
        assert [r.stream for r in res] == [f"w-{i % 5}" for i in range(500)]
        c.PIPELINE_MAX = 4096
        with pytest.raises(maos.WrongExpectedVersion):
            c.append_batch([("r-1", [{"type": "t"}])] * 10, expect="no_stream")
        assert [e.version for e in c.read("r-1")] == [0]
        c.append("r-2", [{"type": "a0"}])
        with pytest.raises(maos.WrongExpectedVersion) as ei:
            c.append_batch([("r-2", [{"type": "a"}]), ("r-2", [{"type": "b"}]),
                            ("r-3", [{"type": "c"}])], expect=0)
        assert ei.value.actual == 1  # the first refusal: b's
        assert [e.type for e in c.read("r-2")] == ["a0", "a"]
        with pytest.raises(maos.NotFound):
            list(c.read("r-3"))
        big = [("f-1", [{"type": "t", "data": b"\x00" * (17 << 20)}])]
        with pytest.raises(maos.FrameTooLarge):
            c.append_batch([("f-0", [{"type": "t"}])] * 3 + big * 2 + [("f-2", [{"type": "t"}])])
        with pytest.raises(maos.InvalidArgument):
            c.append_batch([("f-0", [{"type": "t"}])] * 3 + [("f-2", [])])
        unenc = [{"type": "t", "data": {"tags": {1, 2}}}]  # a set: no msgpack form
        with pytest.raises(maos.InvalidArgument):  # not msgpack's TypeError
            c.append("f-2", unenc)
        with pytest.raises(maos.InvalidArgument):
            c.append_batch([("f-0", [{"type": "t"}])] * 3 + [("f-2", unenc)])
        for st in ("f-0", "f-2"):  # nothing of these batches was sent
            with pytest.raises(maos.NotFound):
                list(c.read(st))
        # appends of 6 MiB: requests of two (max_frame is 16 MiB), in order
        mid = [(f"h-{i}", [{"type": "t", "data": b"\x01" * (6 << 20)}]) for i in range(5)]
        res = c.append_batch(mid)
        assert [r.stream for r in res] == [f"h-{i}" for i in range(5)]
        assert [r.first_position for r in res] == sorted(r.first_position for r in res)
        c.ping()


def test_append_many(sock: str) -> None:
    """append_many: runs of one stream's events become one append each (at
    most max_per_append), every event in its stream in the order given."""
    with maos.Client(sock) as c:
        pairs = [(f"m-{i // 250}", {"type": "t", "data": i}) for i in range(1000)]
        pairs += [("m-0", {"type": "u", "data": -1})]
        res = c.append_many(pairs, max_per_append=100)
        assert [(r.stream, r.count) for r in res] == \
            [(f"m-{k}", n) for k in range(4) for n in (100, 100, 50)] + [("m-0", 1)]
        assert sum(r.count for r in res) == 1001
        assert [e.data for e in c.read("m-0")] == list(range(250)) + [-1]
        assert [e.version for e in c.read("m-3")] == list(range(250))
        for bad in ([], [("m-1",)], [("m-1", {"type": "t"})] * 2 + ["x"]):
            with pytest.raises(maos.InvalidArgument):
                c.append_many(bad)  # type: ignore[arg-type]
        with pytest.raises(maos.InvalidArgument):
            c.append_many([("m-1", {"type": "t"})], max_per_append=0)


def test_paging_reads_one_page_ahead(daemon: Daemon) -> None:
    """read/read_all ask for the next page before handing out this one's
    events: a loop left early leaves no reply behind (the client stays in
    step), calls made inside the loop get their own replies, and a page
    asked for on a connection that was replaced (maosd restarted, the
    client reconnected by a call inside the loop) is asked for again: every
    event once, in order."""
    with maos.Client(daemon.sock) as c:
        c.append_many([("a-1", {"type": "t", "data": i}) for i in range(100)])
        for k, ev in enumerate(c.read_all(page_size=10)):
            if k == 14:
                break
        c.ping()
        assert not c._replies  # the page asked for ahead was dropped, not kept
        assert [e.data for e in c.read("a-1", page_size=7)] == list(range(100))
        seen = []
        for ev in c.read_all(stream="a-1", page_size=9):
            seen.append(ev.data)
            if ev.data % 10 == 0:
                c.append("b-1", [{"type": "t", "data": ev.data}])
                assert c.stats()["head_position"] == 100 + ev.data // 10 + 1
        assert seen == list(range(100))
        assert [e.data for e in c.read("b-1")] == list(range(0, 100, 10))
        got = []
        for ev in c.read("a-1", page_size=10):
            got.append(ev.data)
            if ev.data == 15:
                daemon.kill9()
                daemon.start()
                for _ in range(3):  # the first call may meet the dead connection
                    try:
                        c.append("c-1", [{"type": "t"}])
                        break
                    except maos.ConnectionLost:
                        pass
                assert c.reconnects == 1
        assert got == list(range(100))


def test_read_paging_and_backward(sock: str) -> None:
    with maos.Client(sock) as c:
        c.append_batch([("p-1", [{"type": "t", "data": i} for i in range(10)])
                        for _ in range(25)])
        fw = [e.version for e in c.read("p-1", page_size=7)]
        assert fw == list(range(250))
        assert [e.version for e in c.read("p-1", 240)] == list(range(240, 250))
        bw = [e.version for e in c.read("p-1", backward=True, page_size=33)]
        assert bw == list(range(249, -1, -1))
        assert [e.version for e in c.read("p-1", 5, backward=True)] == [5, 4, 3, 2, 1, 0]
        with pytest.raises(maos.NotFound):
            list(c.read("nope-9"))


def test_read_all_filters(sock: str) -> None:
    with maos.Client(sock) as c:
        c.append("task-1", [{"type": "created"}, {"type": "done"}])
        c.append("job-1", [{"type": "created"}])
        c.append("task-2", [{"type": "created"}])
        all_ = list(c.read_all())
        assert [e.position for e in all_] == [1, 2, 3, 4]
        assert [e.stream for e in c.read_all(category="task")] == ["task-1", "task-1", "task-2"]
        assert [e.position for e in c.read_all(prefix="task-", types=["done"])] == [2]
        assert [e.position for e in c.read_all(stream="job-1")] == [3]
        assert [e.position for e in c.read_all(backward=True, page_size=1)] == [4, 3, 2, 1]
        assert [e.position for e in c.read_all(3)] == [3, 4]
        t2 = all_[1].time
        assert [e.position for e in c.read_all(since=t2, until=t2)] == \
            [e.position for e in all_ if e.time == t2]
        with pytest.raises(maos.InvalidArgument):
            list(c.read_all(since=dt.datetime(2020, 1, 1)))  # naive: refused


def test_record_forms(sock: str) -> None:
    # reads ask for records as arrays (PROTOCOL.md "Record forms"): the same
    # Events, prev included, as the stored maps give, however they are read
    from maos import _ops as O
    with maos.Client(sock) as c:
        c.append_batch([(f"rf-{i % 3}", [{"type": f"t{i % 2}", "data": {"i": i, "s": "x" * i},
                                          "meta": {"who": i}}]) for i in range(60)])
        reads = [({"stream": "rf-1"}, {}), ({"stream": "rf-2"}, {"backward": True}),
                 ({}, {}), ({}, {"backward": True}), ({"prefix": "rf-", "types": ["t1"]}, {}),
                 ({"stream": "rf-0"}, {"backward": True})]
        for flt, kw in reads:
            for size in (1, 7, None):
                if "stream" in flt and not kw.get("backward") and size == 7:
                    a = list(c.read(flt["stream"], page_size=size))
                    m = list(c._pages(O.read(flt["stream"], None, False, size, form="map")))
                else:
                    a = list(c.read_all(page_size=size, **flt, **kw))
                    m = list(c._pages(O.read_all(None, kw.get("backward", False), size,
                                                 form="map", **flt)))
                assert a and a == m, (flt, kw, size)
                assert [e.prev for e in a] == [e.prev for e in m]
                assert [(e.id, e.time) for e in a] == [(e.id, e.time) for e in m]
        ev = next(iter(c.read_all(stream="rf-2")))
        assert ev.data == {"i": 2, "s": "xx"} and ev.meta == {"who": 2} and len(ev.prev) == 32


def test_malformed_array_records() -> None:
    good = [1, 1700000000000000, 0, "s", "t", b"\x01" * 16, b"\x00" * 32, None, {}]
    assert C.to_event(list(good)).stream == "s"
    for bad in ([], good[:8], good + [b"h", 1], [-1] + good[1:], good[:3] + [b"s"] + good[4:],
                good[:5] + [b"\x01" * 15] + good[6:], good[:6] + ["p"] + good[7:],
                good[:8] + [[]], good[:2] + [1.5] + good[3:]):
        with pytest.raises(maos.ProtocolViolation):
            C.to_event(bad)


def test_malformed_array_append_results() -> None:
    good = ["s", 0, 1, 2, False, b"\x01" * 32]
    r = C.batch_results({"results": [list(good)]}, 1)[0]
    assert isinstance(r, maos.AppendResult) and r.count == 2 and len(r.ids) == 2
    for bad in ([], good[:5], good + [1], [b"s"] + good[1:], good[:1] + [-1] + good[2:],
                good[:3] + [1] + good[4:], good[:4] + [0] + good[5:], good[:5] + ["i"],
                good[:2] + [1.5] + good[3:]):
        with pytest.raises(maos.ProtocolViolation):
            C.batch_results({"results": [bad]}, 1)


def test_append_batch_results_as_arrays(sock: str) -> None:
    """The client asks for append_batch results as arrays; they come back
    as the same AppendResults a map would give."""
    with maos.Client(sock) as c:
        res = c.append_batch([("arr-1", [{"type": "t"}, {"type": "u"}]), ("arr-2", [{"type": "t"}])])
        assert [(r.stream, r.first_version, r.count) for r in res] == [("arr-1", 0, 2), ("arr-2", 0, 1)]
        assert res[1].first_position == res[0].first_position + 2
        evs = list(c.read("arr-1"))
        assert tuple(e.id for e in evs) == res[0].ids


def test_streams_and_stats(sock: str) -> None:
    with maos.Client(sock) as c:
        for i in range(5):
            c.append(f"s-{i}", [{"type": "t"}] * (i + 1))
        ss = list(c.streams("s-", page_size=2))
        assert [s.stream for s in ss] == [f"s-{i}" for i in range(5)]
        assert ss[4].head == 4 and ss[4].count == 5 and ss[4].last_position == 15
        assert [s.stream for s in c.streams("s-", after="s-2")] == ["s-3", "s-4"]
        st = c.stats()
        assert st["head_position"] == 15 and st["state"] == "ok"
        assert len(st["head_hash"]) == 32 and st["server"].startswith("maosd")


def test_txn_both_forms(sock: str) -> None:
    with maos.Client(sock) as c:
        r = c.txn([{"stream": "t-1", "events": [{"type": "a"}], "expect": "no_stream"},
                   {"stream": "t-2", "events": [{"type": "b"}, {"type": "c"}]}])
        assert [x.stream for x in r] == ["t-1", "t-2"] and r[1].count == 2
        with pytest.raises(maos.WrongExpectedVersion) as ei:
            c.txn([{"stream": "t-3", "events": [{"type": "a"}]},
                   {"stream": "t-1", "events": [{"type": "a"}], "expect": "no_stream"}])
        assert ei.value.index == 1 and ei.value.actual == 0
        with pytest.raises(maos.NotFound):
            list(c.read("t-3"))  # nothing of the failed txn was written
        c.enqueue("tq", [{"data": 1}])
        task = c.claim("tq")[0]
        res = c.txn(ops=[
            {"op": "append", "stream": "t-4", "events": [{"type": "a"}]},
            {"op": "put", "table": "kv.x", "key": "k1", "data": {"v": 1}},
            {"op": "checkpoint", "name": "cp1", "position": 2},
            {"op": "ack", "task": task, "result": {"ok": True}},
            {"op": "enqueue", "queue": "tq", "tasks": [{"data": 2}]},
        ])
        assert isinstance(res[0], maos.AppendResult) and isinstance(res[1], maos.PutResult)
        assert res[2] is None and isinstance(res[3], int)
        assert isinstance(res[4], maos.EnqueueResult) and len(res[4].task_ids) == 1
        assert c.checkpoint_get("cp1") == 2
        assert c.task(task.id).state == "done" and c.task(task.id).result == {"ok": True}
        res = c.txn(ops=[{"op": "delete", "table": "kv.x", "key": "k1"}])
        assert isinstance(res[0], int)
        with pytest.raises(maos.InvalidArgument):
            c.txn()


def test_subscribe_catchup_then_live(sock: str) -> None:
    with maos.Client(sock) as c, maos.Client(sock) as w:
        c.append("task-1", [{"type": "a"}, {"type": "b"}])
        sub = c.subscribe(stream="task-1", start="start", markers=True)
        got = [sub.next(timeout=10) for _ in range(3)]
        assert [g.version for g in got[:2] if isinstance(g, maos.Event)] == [0, 1]
        assert isinstance(got[2], maos.CaughtUp) and sub.caught_up
        w.append("task-1", [{"type": "c"}])
        w.append("other-1", [{"type": "c"}])
        ev = sub.next(timeout=10)
        assert isinstance(ev, maos.Event) and ev.version == 2
        assert sub.next(timeout=0.2) is None  # the other stream is filtered out
        sub.close()
        # from_version waits for that version; start="end" sees only new ones
        s2 = c.subscribe(stream="task-1", from_version=4)
        s3 = c.subscribe(category="task")
        w.append("task-1", [{"type": "d"}, {"type": "e"}])
        assert [s2.next(timeout=10).version for _ in range(1)] == [4]  # type: ignore[union-attr]
        assert [s3.next(timeout=10).version for _ in range(2)] == [3, 4]  # type: ignore[union-attr]
        # iterator form
        for ev2 in c.subscribe(types=["e"], start=1):
            assert isinstance(ev2, maos.Event) and ev2.type == "e"
            break


def test_checkpoints_and_channels(sock: str) -> None:
    with maos.Client(sock) as c, maos.Client(sock) as p:
        with pytest.raises(maos.NotFound):
            c.checkpoint_get("cp")
        assert c.checkpoint("cp", 1) == 1
        c.checkpoint_save("cp", 42)
        assert c.checkpoint_get("cp") == 42
        ch = c.subscribe_channel("cancel.*")
        assert p.publish("cancel.job-1", {"why": "user"}) == 1
        assert p.publish("other", 1) == 0
        m = ch.next(timeout=10)
        assert m == maos.Message("cancel.job-1", {"why": "user"})
        ch.close()
        assert p.publish("cancel.job-2") == 0


def test_tables(sock: str) -> None:
    with maos.Client(sock) as c:
        r = c.put("kv.plan", "step-1", {"title": "a", "tags": ["x", "y"]})
        assert r.revision == r.created_revision
        e = c.get("kv.plan", "step-1")
        assert (e.table, e.key, e.data, e.bound) == ("kv.plan", "step-1",
                                                   {"title": "a", "tags": ["x", "y"]}, False)
        assert e.created.tzinfo is not None
        r2 = c.put("kv.plan", "step-1", {"title": "b"}, expect=r.revision)
        assert r2.created_revision == r.revision
        with pytest.raises(maos.WrongRevision) as ei:
            c.put("kv.plan", "step-1", {"title": "c"}, expect=r.revision)
        assert ei.value.actual == r2.revision and ei.value.entry is not None
        with pytest.raises(maos.WrongRevision) as ei:
            c.put("kv.plan", "step-1", {}, expect="absent")
        for i in range(2, 6):
            c.put("kv.plan", f"step-{i}", {"n": i, "tags": ["x"] if i % 2 else []})
        assert [x.key for x in c.list("kv.plan", "step-", page_size=2)] == \
            [f"step-{i}" for i in range(1, 6)]
        assert [x.key for x in c.list("kv.plan", where={"tags": "x"})] == ["step-3", "step-5"]
        assert [x.key for x in c.list("kv.plan", after="step-4")] == ["step-5"]
        assert c.count("kv.plan") == 5 and c.count("kv.plan", where={"n": 2}) == 1
        assert c.delete("kv.plan", "step-5") > r2.revision
        with pytest.raises(maos.NotFound) as ei2:
            c.get("kv.plan", "step-5")
        assert ei2.value.actual == -1
        with pytest.raises(maos.NotFound):
            c.delete("kv.plan", "step-5")
        with pytest.raises(maos.WrongRevision):
            c.delete("kv.plan", "step-5", expect="exists")
        with pytest.raises(maos.InvalidName):
            c.put("foo", "k", {})
        with pytest.raises(maos.InvalidArgument):
            c.put("kv.plan", "k", [1])  # type: ignore[arg-type]


def test_watch(sock: str) -> None:
    with maos.Client(sock) as c, maos.Client(sock) as w:
        c.put("kv.w", "a", {"v": 1})
        c.put("kv.w", "b", {"v": 2})
        wt = c.watch("kv.w", markers=True)
        snap = [wt.next(timeout=10), wt.next(timeout=10)]
        assert sorted(e.key for e in snap if isinstance(e, maos.Entry)) == ["a", "b"]
        r = w.put("kv.w", "a", {"v": 3})
        while True:
            ev = wt.next(timeout=10)
            assert ev is not None
            if isinstance(ev, maos.Event):
                break
        assert ev.type == "put" and ev.position == r.revision and ev.data["data"] == {"v": 3}
        wt.close()
        w2 = c.watch("kv.w", start=r.revision - 1)
        ev = w2.next(timeout=10)
        assert isinstance(ev, maos.Event) and ev.position == r.revision
        w3 = c.watch("kv.w", start="now")
        d = w.delete("kv.w", "b")
        ev = w3.next(timeout=10)
        assert isinstance(ev, maos.Event) and ev.type == "deleted" and ev.position == d


def test_agents_locks_sessions(sock: str) -> None:
    with maos.Client(sock) as a, maos.Client(sock) as b:
        a.agent_register("writer-1", session="s1", name="W", kind="llm", tags=["x"],
                         details={"model": "m"})
        e = b.get("agents", "writer-1")
        assert e.data["status"] == "online" and e.data["tags"] == ["x"]
        a.agent_status("busy", {"task": 1})
        assert b.get("agents", "writer-1").data["status"] == "busy"
        ev = a.append("note-1", [{"type": "n", "meta": {"agent": "liar"}}])
        assert next(iter(b.read("note-1"))).meta["agent"] == "writer-1"
        assert ev.count == 1
        with pytest.raises(maos.Conflict):
            a.agent_register("writer-2")  # one agent per connection
        with pytest.raises(maos.Unauthorized):
            b.put("agents", "writer-1", {})
        with pytest.raises(maos.Unauthorized):
            b.agent_deregister("writer-1")
        with pytest.raises(maos.NotFound):
            b.agent_status("idle")
        a.agent_deregister("writer-1")
        with pytest.raises(maos.NotFound):
            b.get("agents", "writer-1")
        # locks: fencing token, refused while held, waited for
        tok = a.lock("res")
        with pytest.raises(maos.WrongRevision):
            b.lock("res")
        with pytest.raises(maos.Timeout):
            b.lock("res", wait=0.3)
        a.unlock("res", tok)
        tok2 = b.lock("res", wait=10)
        assert tok2 > tok
        # sessions
        a.session_open("sess-1", {"goal": "g"})
        a.session_close("sess-1", result={"ok": 1})
        s = b.get("sessions", "sess-1").data
        assert s["state"] == "closed" and s["result"] == {"ok": 1} and s["metadata"] == {"goal": "g"}


def test_lock_released_when_holder_closes(sock: str) -> None:
    with maos.Client(sock) as b:
        a = maos.Client(sock)
        a.lock("L")
        a.close()  # the bound entry goes with the connection
        assert b.lock("L", wait=10) > 0


def test_queues(sock: str) -> None:
    with maos.Client(sock) as c:
        er = c.enqueue("jobs", [{"data": {"n": 1}, "priority": 5, "meta": {"m": 1}},
                                {"data": {"n": 2}, "dedupe_key": "d"},
                                {"data": {"n": 3}, "dedupe_key": "d"},
                                {"data": {"n": 4}, "delay": 3_600_000}])
        assert er.duplicates == (False, False, True, False) and er.task_ids[1] == er.task_ids[2]
        t = c.claim("jobs", lease_ms=60000)[0]
        assert t.data == {"n": 1} and t.state == "leased" and t.attempt == 1 and t.token > 0
        assert t.lease_until is not None and t.meta == {"m": 1}
        assert c.extend(t, 120000) is not None
        assert c.ack(t, result="done") > 0
        with pytest.raises(maos.LeaseLost):
            c.ack(t)
        t2 = c.claim(["jobs"], max=5)
        assert [x.data for x in t2] == [{"n": 2}]
        nr = c.nack(t2[0], error="boom", retry_after_ms=0)
        assert nr.state == "ready"
        t3 = c.claim("jobs")[0]
        assert t3.attempt == 2 and t3.last_error == "boom"
        assert c.release(t3.id, t3.token) > 0
        assert c.task(t3.id).state == "ready" and c.task(t3.id).attempt == 1
        qs = c.queue_stats("jobs")
        assert qs[0].queue == "jobs" and qs[0].ready == 1 and qs[0].delayed == 1
        assert qs[0].done == 1
        assert [q.queue for q in c.queue_stats()] == ["jobs"]
        with pytest.raises(maos.NotFound):
            c.queue_stats("nope")
        with pytest.raises(maos.NotFound):
            c.task(uuid.uuid4())
        assert c.claim("empty", wait_ms=50) == []
        # dead letters
        c.enqueue("dq", [{"data": i, "max_attempts": 1} for i in range(3)])
        for _ in range(3):
            x = c.claim("dq")[0]
            assert c.nack(x, error="bad").state == "dead"
        dead = list(c.dead_list("dq", page_size=2))
        assert sorted(d.data for d in dead) == [0, 1, 2] and all(d.state == "dead" for d in dead)
        assert c.dead_retry("dq", dead[0].id) == maos.DeadResult(1, False)
        with pytest.raises(maos.Conflict):
            c.dead_retry("dq", dead[0].id)
        assert c.dead_retry("dq").count == 2
        x = c.claim("dq", max=3)
        assert len(x) == 3
        for y in x:
            c.nack(y)
        assert c.dead_purge("dq") == maos.DeadResult(3, False)
        assert list(c.dead_list("dq")) == []


def test_bad_input_refused_before_sending(sock: str) -> None:
    with maos.Client(sock) as c:
        bad = [
            lambda: c.append("s-1", []),
            lambda: c.append("s-1", {"type": "x"}),  # type: ignore[arg-type]
            lambda: c.append("s-1", [{"data": 1}]),
            lambda: c.append("s-1", [{"type": "x", "bogus": 1}]),
            lambda: c.append("s-1", [{"type": "x", "id": "not-a-uuid"}]),
            lambda: c.append("s-1", [{"type": "x"}], expect="absent"),
            lambda: c.append("s-1", [{"type": "x"}], expect=-1),
            lambda: c.append(7, [{"type": "x"}]),  # type: ignore[arg-type]
            lambda: c.subscribe(start="middle"),
            lambda: c.subscribe(prefix="x", from_version=1),
            lambda: c.subscribe(types="abc"),  # type: ignore[arg-type]
            lambda: list(c.read("s-1", page_size=0)),
            lambda: c.ack(uuid.uuid4()),
            lambda: c.enqueue("q", [{"bogus": 1}]),
            lambda: c.watch("kv.x", start="later"),
            lambda: c.delete("kv.x", "k", expect=1.5),  # type: ignore[arg-type]
        ]
        for f in bad:
            with pytest.raises(maos.InvalidArgument):
                f()
        c.ping()  # the connection is fine: nothing was sent


def test_data_operations(sock: str, daemon: Daemon) -> None:
    """backup, metrics and task_list (issue 13), sync and async."""
    import asyncio
    import os
    with maos.Client(sock) as c:
        c.append("bk-1", [{"type": "t", "data": {"i": i}} for i in range(3)])
        c.enqueue("tl", [{"data": i} for i in range(5)])
        c.enqueue("other", [{"data": "x"}])
        # task_list: every task, paged, of one queue or all
        mine = list(c.task_list("tl", page_size=2))
        assert sorted(t.data for t in mine) == [0, 1, 2, 3, 4]
        assert all(t.queue == "tl" and t.state == "ready" for t in mine)
        assert len(list(c.task_list())) == 6
        # backup: a new directory holding the head
        target = os.path.join(os.path.dirname(daemon.sock), "copy")
        head = c.backup(target)
        # the head the copy holds; maosd records the backup in $audit after it
        assert 0 < head <= c.stats()["head_position"]
        assert os.path.isdir(target)
        with pytest.raises(maos.Conflict):
            c.backup(target)
        with pytest.raises(maos.InvalidArgument):
            c.backup("relative")
        # metrics: the Prometheus text
        text = c.metrics()
        assert "# TYPE maos_commit_write_duration_seconds histogram" in text
        import re
        m = re.search(r"^maos_head_position (\d+)$", text, re.M)
        assert m and int(m.group(1)) >= head

    async def run() -> None:
        async with maos.AsyncClient(sock) as a:
            assert len([t async for t in a.task_list("tl")]) == 5
            assert "maos_read_only 0" in await a.metrics()
            with pytest.raises(maos.Conflict):
                await a.backup(target)
    asyncio.run(run())


def test_retention(sock: str) -> None:
    """stream_meta and compact (issue 13, retention), sync and async."""
    import asyncio
    import time
    with maos.Client(sock) as c:
        c.append("rp-1", [{"type": "t", "data": {"i": i}} for i in range(10)])
        m = c.stream_meta("rp-1", max_count=3)
        assert (m.max_count, m.max_age_ms, m.head, m.deleted) == (3, 0, 9, False)
        deadline = time.monotonic() + 60
        while [e.version for e in c.read("rp-1")] != [7, 8, 9]:
            assert time.monotonic() < deadline, "the removal pass never ran"
        assert c.stream_meta("rp-1").first_version == 7
        # the same pass made stubs of them: gone from $all too
        assert [e.version for e in c.read_all() if e.stream == "rp-1"] == [7, 8, 9]
        assert c.stats()["events_removed"] == 7
        m = c.stream_meta(category="rp", max_age_ms=60000)
        assert (m.max_count, m.max_age_ms, m.head) == (0, 60000, -1)
        assert c.stream_meta(category="rp", clear=True).max_age_ms == 0
        c.append("rp-2", [{"type": "t"} for _ in range(4)])
        assert c.stream_meta("rp-2", truncate_before=2).first_version == 2
        assert [e.version for e in c.read("rp-2")] == [2, 3]
        assert c.stream_meta("rp-2", delete=True).deleted
        with pytest.raises(maos.NotFound):
            list(c.read("rp-2"))
        with pytest.raises(maos.BadRequest):
            c.stream_meta("rp-1", truncate_before=100)
        with pytest.raises(maos.InvalidName):
            c.stream_meta("$system", delete=True)
        with pytest.raises(maos.InvalidArgument):
            c.stream_meta("rp-1", category="rp")
        with pytest.raises(maos.InvalidArgument):
            c.stream_meta("rp-1", max_count=1, clear=True)
        c.compact()
        assert [e.version for e in c.read("rp-1")] == [7, 8, 9]

    async def run() -> None:
        async with maos.AsyncClient(sock) as a:
            m = await a.stream_meta("rp-1")
            assert (m.max_count, m.first_version) == (3, 7)
            await a.compact()
    asyncio.run(run())


def test_signing(sock: str) -> None:
    """pubkey and chain_sign: the signature checks out with the key."""
    import asyncio
    with maos.Client(sock) as c:
        c.append("sg-1", [{"type": "t", "data": {"i": i}} for i in range(2)])
        key = c.pubkey()
        assert len(key) == 32
        first, second = list(c.read("sg-1"))
        h, sig = c.chain_sign(first.position)
        assert len(sig) == 64
        assert h == second.prev  # the hash of the record, as the chain links it
        with pytest.raises(maos.NotFound):
            c.chain_sign(10**9)
        with pytest.raises(maos.InvalidArgument):
            c.chain_sign(0)

    async def run() -> None:
        async with maos.AsyncClient(sock) as a:
            assert await a.pubkey() == key
    asyncio.run(run())
