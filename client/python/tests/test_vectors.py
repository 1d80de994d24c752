"""proto/vectors/vectors.json (made by the C encoders, tests/python/gen_vectors.c)
checked by the Python client, byte for byte:

- every vector decodes (maos._core.unpack) to its JSON meaning;
- every request is re-encoded from its meaning to the same bytes, and is
  also built by the Python client's own request builders (maos._ops /
  maos._core, the code every call uses) from the call's arguments to the
  same bytes: the Python client sends what the C client sends;
- every reply passes the client's required-field check for its op and
  converts (or maps to its exception); every push is taken by a
  subscription.
The C side (gen_vectors check) is the meson test proto-vectors-c."""
from __future__ import annotations

import json
import os
import uuid
from typing import Any, Callable, Union

import pytest

import maos
from maos import _core as C
from maos import _ops as O
from maos import errors as E

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PATH = os.path.join(os.environ.get("MAOS_VECTORS_DIR") or os.path.join(ROOT, "proto", "vectors"),
                    "vectors.json")


def from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if list(v) == ["$bin"]:
            return bytes.fromhex(v["$bin"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


VECTORS = json.load(open(PATH))["vectors"]
ID1 = uuid.UUID("0190f0f0-0000-7000-8000-000000000001")
ID2 = uuid.UUID("0190f0f0-0000-7000-8000-000000000002")
ID3 = uuid.UUID("0190f0f0-0000-7000-8000-000000000003")
ID4 = uuid.UUID("0190f0f0-0000-7000-8000-000000000004")
DATA = {"title": "write the report", "priority": 2, "tags": ["a", -300]}
META = {"agent": "planner"}
DOC = {"state": "open", "n": 70000}
DETAIL = "step 3 of 5"
EV0 = {"type": "created", "data": DATA, "meta": META, "id": ID1}
TASK0 = {"data": DATA}
TASK1 = {"data": DETAIL, "meta": META, "priority": -3, "delay": 5000, "max_attempts": 3,
         "lease_ms": 60000, "backoff_ms": 100, "dedupe_key": "d-1", "ordering_key": "o-1"}
FILTER = dict(prefix="task-", category="task", types=["created", "done"],
              since=1700000000000000, until=1800000000000000)

Built = tuple[str, Union[dict[str, Any], C.Packed]]


def call(c: O.Call[Any]) -> Built:
    return c.op, c.body


def page(p: O.Pager[Any], cur: Any) -> Built:
    return call(p.make(cur))


# name -> the Python client's own builders, from the call's arguments
BUILDERS: dict[str, Callable[[], Built]] = {
    "hello": lambda: ("hello", C.hello_body("maos-python", None)),
    "ping": lambda: call(O.ping()),
    "stats": lambda: call(O.stats()),
    "append_no_stream": lambda: call(O.append("task-42", [
        EV0, {"type": "assigned"}, {"type": "note", "data": DETAIL}], "no_stream")),
    "append_any": lambda: call(O.append("task-42", [{"type": "assigned"}])),
    "append_exists": lambda: call(O.append("task-42", [{"type": "assigned"}], "exists")),
    "append_version": lambda: call(O.append("task-42", [{"type": "assigned"}], 300)),
    "txn_appends": lambda: call(O.txn([
        {"stream": "task-1", "events": [{"type": "assigned"}], "expect": 0},
        {"stream": "job-1", "events": [{"type": "note", "data": DETAIL}]}])),
    "append_batch": lambda: ("append_batch", C.batch_requests([
        ("task-1", [{"type": "assigned"}]),
        ("job-1", [{"type": "note", "data": DETAIL}]),
        ("task-1", [{"type": "assigned"}])], "any", C.DEFAULT_MAX_FRAME)[0]),
    "txn_ops": lambda: call(O.txn(ops=[
        {"op": "append", "stream": "task-1", "events": [{"type": "assigned"}], "expect": 0},
        {"op": "put", "table": "kv.plan", "key": "step-1", "data": DOC, "expect": "absent"},
        {"op": "delete", "table": "kv.plan", "key": "step-0", "expect": 12},
        {"op": "checkpoint", "name": "indexer", "position": 99},
        {"op": "enqueue", "queue": "jobs", "tasks": [TASK0]},
        {"op": "ack", "task": ID1, "token": 41, "result": {"ok": True}},
        {"op": "nack", "task": ID2, "token": 42, "error": "boom", "retry_after_ms": 250},
        {"op": "extend", "task": ID3, "token": 43, "lease_ms": 30000},
        {"op": "release", "task": ID4, "token": 44}])),
    # the C client's form (maps); the Python client asks for arrays
    "read_default": lambda: page(O.read("task-42", form="map"), None),
    "read_backward": lambda: page(O.read("task-42", 7, True, 50, form="map"), 7),
    "read_all_filter": lambda: page(O.read_all(1000, False, 500, form="map", **FILTER), 1000),
    "read_all_backward": lambda: page(O.read_all(None, True, form="map"), None),
    "read_array": lambda: page(O.read("task-42", 7, True, 50), 7),
    "read_all_array": lambda: page(O.read_all(1000, False, 500, **FILTER), 1000),
    "streams": lambda: page(O.streams("task-", "task-1", 100), "task-1"),
    "subscribe_start": lambda: ("subscribe", C.subscribe_body(
        C.filter_body(stream="task-42"), "start", form="map")),
    "subscribe_end": lambda: ("subscribe", C.subscribe_body(
        C.filter_body(category="task", types=["created"]), "end", form="map")),
    "subscribe_from_version": lambda: ("subscribe", C.subscribe_body(
        C.filter_body(stream="task-42"), from_version=5, form="map")),
    "subscribe_position": lambda: ("subscribe", C.subscribe_body(C.filter_body(), 1234,
                                                                 form="map")),
    "subscribe_array": lambda: ("subscribe", C.subscribe_body(
        C.filter_body(category="task", types=["created"]), "start")),
    "unsubscribe": lambda: call(O.unsubscribe(3)),
    "checkpoint_save": lambda: call(O.checkpoint_save("indexer", 4096)),
    "checkpoint_get": lambda: call(O.checkpoint_get("indexer")),
    "publish": lambda: call(O.publish("cancel.job-1", {"ok": True})),
    "publish_nil": lambda: call(O.publish("tick")),
    "subscribe_channel": lambda: ("subscribe_channel", {"pattern": "cancel.*"}),
    "put": lambda: call(O.put("kv.plan", "step-1", DOC)),
    "put_lock": lambda: call(O.put("locks", "printer", DOC, "absent", True)),
    "put_revision": lambda: call(O.put("kv.plan", "step-1", DOC, 77)),
    "get": lambda: call(O.get("kv.plan", "step-1")),
    "delete": lambda: call(O.delete("kv.plan", "step-1", "exists")),
    "list": lambda: page(O.list_("kv.plan", "step-", {"state": "open"}, "step-2", 10),
                         "step-2"),
    "list_plain": lambda: page(O.list_("sessions"), ""),
    "count": lambda: call(O.count("kv.plan", "step-", {"state": "open"})),
    "watch_entries": lambda: ("watch", O.watch_body("kv.plan", "step-")),
    "watch_revision": lambda: ("watch", O.watch_body("kv.plan", "", 88)),
    "watch_now": lambda: ("watch", O.watch_body("locks", "", "now")),
    "agent_register": lambda: call(O.agent_register("writer-1", "s-1", "Writer", "llm",
                                                    ["llm", "writer"], {"model": "m-1"})),
    "agent_register_plain": lambda: call(O.agent_register("writer-2")),
    "agent_deregister": lambda: call(O.agent_deregister("writer-1")),
    "agent_status": lambda: call(O.agent_status("busy", DETAIL)),
    "enqueue": lambda: call(O.enqueue("jobs", [TASK0, TASK1])),
    "claim": lambda: call(O.claim(["jobs", "urgent"], 60000, 5000, 10, True)),
    "claim_plain": lambda: call(O.claim("jobs")),
    "ack": lambda: call(O.ack(ID1, 41, {"ok": True})),
    "ack_plain": lambda: call(O.ack(ID1, 41)),
    "nack": lambda: call(O.nack(ID2, 42, "boom", 250)),
    "nack_plain": lambda: call(O.nack(ID2, 42)),
    "extend": lambda: call(O.extend(ID1, 30000, 43)),
    "release": lambda: call(O.release(ID2, 44)),
    "task": lambda: call(O.task(ID1)),
    "queue_stats": lambda: call(O.queue_stats("jobs")),
    "queue_stats_all": lambda: call(O.queue_stats()),
    "dead_list": lambda: page(O.dead_list("jobs", 100), ID1.bytes),
    "dead_retry": lambda: call(O.dead_retry("jobs", ID2)),
    "dead_retry_all": lambda: call(O.dead_retry("jobs")),
    "dead_purge": lambda: call(O.dead_purge("jobs")),
    "token_create": lambda: call(O.token_create(
        "agent-7", ["read:s42-", "kv.write:kv.plan/s42/", "admin"], session="s42",
        expires_ms=3600000, uid=1000)),
    "token_list": lambda: call(O.token_list()),
    "token_revoke": lambda: call(O.token_revoke("agent-7")),
}


def test_file_is_complete() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))
    reqs = {v["name"] for v in VECTORS if v["kind"] == "request"}
    assert reqs == set(BUILDERS), "every request vector needs its Python builder"
    ops = {v["op"] for v in VECTORS if v["kind"] == "request"}
    assert ops >= set(C.REQUIRED), f"ops without a request vector: {set(C.REQUIRED) - ops}"


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["hex"])
    value = from_json(v["value"])
    assert C.unpack(raw) == value, "decoding disagrees with the vector's meaning"
    if v["kind"] == "request":
        assert C.pack(value) == raw, "re-encoding the meaning gives other bytes"
        op, body = BUILDERS[v["name"]]()
        core = C.Core()
        core.last_rid = value["rid"] - 1
        rid, frame = core.encode(op, body)
        assert frame[4:] == raw, f"the Python client builds other bytes for {v['name']}"
        assert frame[:4] == len(raw).to_bytes(4, "big")
    elif v["kind"] == "reply":
        msg = C.unpack(raw)
        if msg["rid"] == 0:
            core = C.Core()
            with pytest.raises(maos.Overloaded):
                core.take(raw)
            return
        if msg["ok"] is False:
            with pytest.raises(maos.Error) as ei:
                C.check_reply(v["op"], msg)
            assert ei.value.code == msg["code"] and ei.value.actual == msg.get("actual")
            assert type(ei.value) is E.SERVER_ERRORS[msg["code"]]
            return
        C.check_reply(v["op"], msg)
        core = C.Core()
        core.pending[msg["rid"]] = (v["op"], None)
        got = core.take(raw)
        assert got is not None and got[2] == msg
        if v["op"] == "read":
            evs, nxt = O.read("task-42").make(None).convert(msg)
            assert nxt == 1 and evs[0].id == ID1 and evs[0].meta == {"agent": "planner"}
            assert evs[0].time.isoformat() == "2023-11-14T22:13:20.123456+00:00"
            if v["name"] == "reply_read_array":  # the same event, and a stub
                m0 = C.unpack(next(bytes.fromhex(w["hex"]) for w in VECTORS
                                   if w["name"] == "reply_read"))["events"][0]
                assert evs[0] == C.to_event(m0) and evs[0].prev == m0["prev"]
                assert evs[1].version == 1 and evs[1].data is None and evs[1].meta == {}
                assert getattr(evs[1], "removed") == b"\xab" * 32
        if v["op"] == "get":
            e = O.get("kv.plan", "step-1").convert(msg)
            assert e.data == {"state": "open"} and e.revision == 12
        if v["op"] == "append":
            r = O.append("task-42", [{"type": "x"}]).convert(msg)
            assert r.ids == (ID1, ID2)
        if v["op"] == "append_batch":
            ok, wev, conflict = C.batch_results(msg, 3)
            assert isinstance(ok, maos.AppendResult) and ok.ids == (ID1, ID2)
            assert type(wev) is maos.WrongExpectedVersion and wev.actual == 4
            assert type(conflict) is maos.Conflict and conflict.actual is None
    else:
        msg = C.unpack(raw)
        kind = {"subscribe": "events", "subscribe_channel": "channel", "watch": "watch"}[v["op"]]
        s = C.SubState(kind, {})
        core = C.Core()
        core.subs[msg["sub"]] = s
        assert core.take(raw) is None
        assert len(s.queue) == 1
