"""maos._ops -- every operation once: its request body and how its reply
becomes a Python value.  maos.Client and maos.AsyncClient are thin shells
that send a Call and convert the reply (one with a blocking socket, one
with asyncio), so the two APIs cannot drift apart.

A Call is (op, body, convert).  A Pager builds the Call of each page from
a cursor and splits a page's value into (items, next cursor or None); its
next_of gives the next cursor of a page's reply alone (checked, cheap), so
a client asks for the next page before it converts this one's items.

Invariants: bodies come from maos._core builders (key order of
proto/msg.c); argument errors raise maos.InvalidArgument before anything
is sent.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Mapping, Optional, Sequence, TypeVar, Union

from . import _core as C
from . import errors as E
from .types import (AppendResult, DeadResult, EnqueueResult, Entry, Event, NackResult,
                    PutResult, QueueInfo, StreamInfo, StreamMeta, Task, us_to_datetime)

T = TypeVar("T")
Reply = dict[Any, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    op: str
    body: dict[str, Any]
    convert: Callable[[Reply], T]


@dataclass(frozen=True)
class Pager(Generic[T]):
    make: Callable[[Any], Call[tuple[list[T], Any]]]
    first: Any
    next_of: Callable[[Reply], Any]


def _next_checker(ok: Callable[[Any], bool], what: str) -> Callable[[Reply], Any]:
    """A page reply's `next`: None (the last page) or a cursor ok()
    accepts; anything else is a ProtocolViolation naming `what`."""
    def next_of(m: Reply) -> Any:
        nxt = m["next"]
        if nxt is not None and not ok(nxt):
            raise E.ProtocolViolation(f"{what} reply: bad next")
        return nxt
    return next_of


def _none(_m: Reply) -> None:
    return None


def ping() -> Call[None]:
    return Call("ping", {}, _none)


def append(stream: str, events: Sequence[Mapping[str, Any]],
           expect: C.Expect = "any") -> Call[AppendResult]:
    return Call("append", C.append_body(stream, events, expect), C.to_append)


def txn(appends: Optional[Sequence[Mapping[str, Any]]] = None,
        ops: Optional[Sequence[Mapping[str, Any]]] = None) -> Call[list[Any]]:
    """appends=[{stream, events, expect?}] (original form) or ops=[{op, ...}]."""
    if (appends is None) == (ops is None):
        raise E.InvalidArgument("txn takes appends= or ops=, exactly one")
    if appends is not None:
        al = [C._map(a, "a txn append") for a in C._iterable(appends, "appends: a list of dicts")]
        if not al:
            raise E.InvalidArgument("txn: no appends")
        if any("stream" not in a or "events" not in a for a in al):
            raise E.InvalidArgument("txn: every append needs stream and events")
        body = {"appends": [C.append_body(a["stream"], a["events"], a.get("expect", "any"))
                            for a in al]}
        kinds = ["append"] * len(al)
    else:
        assert ops is not None
        if not ops:
            raise E.InvalidArgument("txn: no ops")
        items = [C.txn_op(o) for o in C._iterable(ops, "ops: a list of dicts")]
        body = {"ops": items}
        kinds = [o["op"] for o in items]

    def conv(m: Reply) -> list[Any]:
        res = m["results"]
        if len(res) != len(kinds):
            raise E.ProtocolViolation("txn reply: results do not match the ops")
        return [C.txn_result(k, r) for k, r in zip(kinds, res)]
    return Call("txn", body, conv)


_event_next = _next_checker(lambda n: C._is(n, C._U), "read")


def _events_page(m: Reply) -> tuple[list[Event], Optional[int]]:
    nxt = _event_next(m)
    with C.gc_paused():  # a page of Events that live on (C.gc_paused)
        return [C.to_event(r) for r in m["events"]], nxt


def read(stream: str, start: Optional[int] = None, backward: bool = False,
         page_size: Optional[int] = None, form: str = "array") -> Pager[Event]:
    # form: how the records travel (PROTOCOL.md "Record forms"): "array"
    # (cheaper to decode: no key strings) or "map" (as stored); to_event
    # takes either, so a server that ignores "form" is read as well
    C._str(stream, "stream")
    if start is not None:
        C._uint(start, "start")
    if page_size is not None and C._uint(page_size, "page_size") == 0:
        raise E.InvalidArgument("page_size must be at least 1")

    def make(cur: Optional[int]) -> Call[tuple[list[Event], Optional[int]]]:
        body: dict[str, Any] = {"stream": stream}
        C._range(body, cur, backward, page_size)
        if form != "map":
            body["form"] = form
        return Call("read", body, _events_page)
    return Pager(make, start, _event_next)


def read_all(start: Optional[int] = None, backward: bool = False,
             page_size: Optional[int] = None, form: str = "array",
             **flt: Any) -> Pager[Event]:
    fb = C.filter_body(**flt)
    if start is not None:
        C._uint(start, "start")
    if page_size is not None and C._uint(page_size, "page_size") == 0:
        raise E.InvalidArgument("page_size must be at least 1")

    def make(cur: Optional[int]) -> Call[tuple[list[Event], Optional[int]]]:
        body: dict[str, Any] = {}
        C._range(body, cur, backward, page_size)
        body.update(fb)
        if form != "map":
            body["form"] = form
        return Call("read_all", body, _events_page)
    return Pager(make, start, _event_next)


def streams(prefix: str = "", after: str = "", page_size: Optional[int] = None
            ) -> Pager[StreamInfo]:
    C._str(prefix, "prefix")
    C._str(after, "after")

    next_of = _next_checker(lambda n: isinstance(n, str), "streams")

    def conv(m: Reply) -> tuple[list[StreamInfo], Optional[str]]:
        return [C.to_stream_info(s) for s in m["streams"]], next_of(m)

    def make(cur: str) -> Call[tuple[list[StreamInfo], Optional[str]]]:
        body: dict[str, Any] = {}
        if prefix:
            body["prefix"] = prefix
        if cur:
            body["after"] = cur
        if page_size:
            body["limit"] = C._uint(page_size, "page_size")
        return Call("streams", body, conv)
    return Pager(make, after, next_of)


def stats() -> Call[dict[str, Any]]:
    return Call("stats", {}, lambda m: {k: v for k, v in m.items() if k not in ("rid", "ok")})


def unsubscribe(server_id: int) -> Call[None]:
    return Call("unsubscribe", {"sub": server_id}, _none)


def checkpoint_save(name: str, position: int) -> Call[None]:
    return Call("checkpoint_save", {"name": C._str(name, "name"),
                                    "position": C._uint(position, "position")}, _none)


def checkpoint_get(name: str) -> Call[int]:
    return Call("checkpoint_get", {"name": C._str(name, "name")}, lambda m: int(m["position"]))


def publish(channel: str, payload: Any = None) -> Call[int]:
    return Call("publish", {"channel": C._str(channel, "channel"), "payload": payload},
                lambda m: int(m["receivers"]))


# ---- tables ------------------------------------------------------------------------

def put(table: str, key: str, data: Mapping[str, Any], expect: C.Expect = "any",
        bind: bool = False) -> Call[PutResult]:
    if data is None:
        raise E.InvalidArgument("put needs data (a dict)")
    return Call("put", C.put_body(table, key, data, expect, bind),
                lambda m: PutResult(m["revision"], m["created_revision"]))


def get(table: str, key: str) -> Call[Entry]:
    return Call("get", {"table": C._str(table, "table"), "key": C._str(key, "key")},
                lambda m: C.to_entry(m["entry"]))


def delete(table: str, key: str, expect: C.Expect = "any") -> Call[int]:
    return Call("delete", C.put_body(table, key, None, expect, False, delete=True),
                lambda m: int(m["revision"]))


def list_(table: str, prefix: str = "", where: Optional[Mapping[str, Any]] = None,
          after: str = "", page_size: Optional[int] = None) -> Pager[Entry]:
    q = C.table_query(table, prefix, where)
    C._str(after, "after")

    next_of = _next_checker(lambda n: isinstance(n, str), "list")

    def conv(m: Reply) -> tuple[list[Entry], Optional[str]]:
        return [C.to_entry(e) for e in m["entries"]], next_of(m)

    def make(cur: str) -> Call[tuple[list[Entry], Optional[str]]]:
        body = dict(q)
        if cur:
            body["after"] = cur
        if page_size:
            body["limit"] = C._uint(page_size, "page_size")
        return Call("list", body, conv)
    return Pager(make, after, next_of)


def count(table: str, prefix: str = "", where: Optional[Mapping[str, Any]] = None
          ) -> Call[int]:
    return Call("count", C.table_query(table, prefix, where), lambda m: int(m["count"]))


def watch_body(table: str, prefix: str = "", start: Union[None, str, int] = None
               ) -> dict[str, Any]:
    body = C.table_query(table, prefix, None)
    if start == "now":
        body["from"] = "now"
    elif start is not None:
        if isinstance(start, str):
            raise E.InvalidArgument("watch start must be None, 'now' or a revision")
        body["from"] = C._uint(start, "start")
    return body


def agent_register(id: str, session: str = "", name: str = "", kind: str = "",
                   tags: Optional[Sequence[str]] = None,
                   details: Optional[Mapping[str, Any]] = None) -> Call[PutResult]:
    body: dict[str, Any] = {"id": C._str(id, "id")}
    for k, v in (("session", session), ("name", name), ("kind", kind)):
        if v:
            body[k] = C._str(v, k)
    if tags:
        if isinstance(tags, str):
            raise E.InvalidArgument("tags must be a list of str")
        body["tags"] = [C._str(t, "tag") for t in tags]
    if details:
        body["details"] = C._map(details, "details")
    return Call("agent_register", body,
                lambda m: PutResult(m["revision"], m["created_revision"]))


def agent_deregister(id: str) -> Call[int]:
    return Call("agent_deregister", {"id": C._str(id, "id")}, lambda m: int(m["revision"]))


def agent_status(status: str, detail: Any = None) -> Call[int]:
    body: dict[str, Any] = {"status": C._str(status, "status")}
    if detail is not None:
        body["detail"] = detail
    return Call("agent_status", body, lambda m: int(m["revision"]))


# ---- queues ------------------------------------------------------------------------

def enqueue(queue: str, tasks: Sequence[Mapping[str, Any]]) -> Call[EnqueueResult]:
    return Call("enqueue", C.enqueue_body(queue, tasks), C.to_enqueue)


def claim(queues: Union[str, Sequence[str]], lease_ms: Optional[int] = None,
          wait_ms: Optional[int] = None, max: int = 1, bind: bool = False
          ) -> Call[list[Task]]:
    return Call("claim", C.claim_body(queues, lease_ms, wait_ms, max, bind),
                lambda m: [C.to_task(t) for t in m["tasks"]])


def ack(task: Any, token: Optional[int] = None, result: Any = None) -> Call[int]:
    tid, tok = C.task_ref(task, token)
    body: dict[str, Any] = {"task": tid, "token": tok}
    if result is not None:
        body["result"] = result
    return Call("ack", body, lambda m: int(m["revision"]))


def nack(task: Any, token: Optional[int] = None, error: str = "",
         retry_after_ms: Optional[int] = None) -> Call[NackResult]:
    tid, tok = C.task_ref(task, token)
    body: dict[str, Any] = {"task": tid, "token": tok}
    if error:
        body["error"] = C._str(error, "error")
    if retry_after_ms is not None:
        body["retry_after_ms"] = C._uint(retry_after_ms, "retry_after_ms")
    return Call("nack", body, lambda m: NackResult(m["revision"], m["state"]))


def extend(task: Any, lease_ms: int, token: Optional[int] = None
           ) -> Call[Optional[_dt.datetime]]:
    tid, tok = C.task_ref(task, token)
    return Call("extend", {"task": tid, "token": tok, "lease_ms": C._uint(lease_ms, "lease_ms")},
                lambda m: us_to_datetime(m["lease_until"]))


def release(task: Any, token: Optional[int] = None) -> Call[int]:
    tid, tok = C.task_ref(task, token)
    return Call("release", {"task": tid, "token": tok}, lambda m: int(m["revision"]))


def task(id: C.IdLike) -> Call[Task]:
    return Call("task", {"task": C.id_bytes(id, "task")}, lambda m: C.to_task(m["task"]))


def queue_stats(queue: str = "") -> Call[list[QueueInfo]]:
    body = {"queue": C._str(queue, "queue")} if queue else {}
    return Call("queue_stats", body, lambda m: [C.to_queue_info(q) for q in m["queues"]])


def _task_pager(op: str, queue: str, page_size: Optional[int]) -> Pager[Task]:
    """dead_list and task_list: pages of tasks, next a task id or None."""
    next_of = _next_checker(lambda n: isinstance(n, bytes) and len(n) == 16, op)

    def conv(m: Reply) -> tuple[list[Task], Optional[bytes]]:
        return [C.to_task(t) for t in m["tasks"]], next_of(m)

    def make(cur: Optional[bytes]) -> Call[tuple[list[Task], Optional[bytes]]]:
        body: dict[str, Any] = {"queue": queue} if queue else {}
        if cur is not None:
            body["after"] = cur
        if page_size:
            body["limit"] = C._uint(page_size, "page_size")
        return Call(op, body, conv)
    return Pager(make, None, next_of)


def dead_list(queue: str, page_size: Optional[int] = None) -> Pager[Task]:
    C._str(queue, "queue")
    return _task_pager("dead_list", queue, page_size)


def task_list(queue: str = "", page_size: Optional[int] = None) -> Pager[Task]:
    """Every task of `queue` ("": of every queue), any state, by id."""
    if queue:
        C._str(queue, "queue")
    return _task_pager("task_list", queue, page_size)


# ---- data operations ----------------------------------------------------------------

def backup(path: str) -> Call[int]:
    """The daemon copies the store into the new directory `path` (absolute);
    the head position the copy holds."""
    p = C._str(path, "path")
    if not p.startswith("/"):
        raise E.InvalidArgument("backup needs an absolute path")
    return Call("backup", {"path": p}, lambda m: int(m["position"]))


def stream_meta(stream: Optional[str] = None, *, category: Optional[str] = None,
                max_count: Optional[int] = None, max_age_ms: Optional[int] = None,
                clear: bool = False, truncate_before: Optional[int] = None,
                delete: bool = False) -> Call[StreamMeta]:
    """Retention of `stream` or of every stream of `category` (PROTOCOL.md
    "Retention"): with max_count / max_age_ms the new rule, clear removes
    it, truncate_before / delete remove events of a stream; nothing: report."""
    if (stream is None) == (category is None):
        raise E.InvalidArgument("give a stream or a category")
    body: dict[str, Any] = ({"stream": C._str(stream, "stream")} if stream is not None
                            else {"category": C._str(category, "category")})
    if max_count is not None or max_age_ms is not None:
        if clear:
            raise E.InvalidArgument("a rule (max_count, max_age_ms) or clear, not both")
        body["max_count"] = C._uint(max_count or 0, "max_count")
        body["max_age_ms"] = C._uint(max_age_ms or 0, "max_age_ms")
    if clear:
        body["clear"] = True
    if category is not None and (truncate_before is not None or delete):
        raise E.InvalidArgument("truncate_before and delete are for a stream")
    if truncate_before is not None:
        body["truncate_before"] = C._uint(truncate_before, "truncate_before")
    if delete:
        body["delete"] = True

    def conv(m: Reply) -> StreamMeta:
        return StreamMeta(int(m["max_count"]), int(m["max_age_ms"]),
                          int(m["first_version"]), int(m["head"]), bool(m["deleted"]))
    return Call("stream_meta", body, conv)


def pubkey() -> Call[bytes]:
    """The daemon's ed25519 public key (32 bytes), which signs $chain."""
    return Call("pubkey", {}, lambda m: bytes(m["key"]))


def chain_sign(position: int) -> Call[tuple[bytes, bytes]]:
    """(hash, signature) of the stored record at position, signed by the
    daemon (ed25519 over b"maos-export-1" + position and the reply's head
    (8 bytes big-endian each) + hash)."""
    p = C._uint(position, "position")
    if p == 0:
        raise E.InvalidArgument("position must be >= 1")
    return Call("chain_sign", {"position": p},
                lambda m: (bytes(m["hash"]), bytes(m["signature"])))


def compact() -> Call[None]:
    """Compact the store now (root and the daemon's user only)."""
    return Call("compact", {}, lambda m: None)


def token_create(name: str, scopes: Sequence[str] = (), *, session: Optional[str] = None,
                 expires_ms: int = 0, uid: Optional[int] = None) -> Call[str]:
    """A new access token (scope admin): its text, shown this once."""
    body: dict[str, Any] = {"name": C._str(name, "name")}
    if scopes:
        body["scopes"] = [C._str(s, "scope") for s in C._iterable(scopes, "scopes: a list of str")]
    if expires_ms:
        body["expires_ms"] = C._uint(expires_ms, "expires_ms")
    if uid is not None:
        body["uid"] = C._uint(uid, "uid")
    if session is not None:
        body["session"] = C._str(session, "session")
    return Call("token_create", body, lambda m: str(m["token"]))


def token_list() -> Call[list[dict[str, Any]]]:
    """Every token's name, scopes, created, expires, last_used, uid, session."""
    def conv(m: Reply) -> list[dict[str, Any]]:
        out = m["tokens"]
        if not all(isinstance(t, dict) for t in out):
            raise E.ProtocolViolation("token_list reply: tokens are not maps")
        return list(out)
    return Call("token_list", {}, conv)


def token_revoke(name: str) -> Call[int]:
    """Delete a token; its connections are closed.  How many were."""
    return Call("token_revoke", {"name": C._str(name, "name")}, lambda m: int(m["count"]))


def metrics() -> Call[str]:
    """Every figure in the Prometheus text exposition format."""
    def conv(m: Reply) -> str:
        t = m["text"]
        if not isinstance(t, str):
            raise E.ProtocolViolation("metrics reply: text is not a string")
        return t
    return Call("metrics", {}, conv)


def dead_retry(queue: str, task: Optional[C.IdLike] = None) -> Call[DeadResult]:
    body: dict[str, Any] = {"queue": C._str(queue, "queue")}
    if task is not None:
        body["task"] = C.id_bytes(task, "task")
    return Call("dead_retry", body, lambda m: DeadResult(m["count"], m["more"]))


def dead_purge(queue: str) -> Call[DeadResult]:
    return Call("dead_purge", {"queue": C._str(queue, "queue")},
                lambda m: DeadResult(m["count"], m["more"]))


def session_doc(id: str, metadata: Optional[Mapping[str, Any]], now_us: int) -> dict[str, Any]:
    return {"id": id, "state": "open", "created": now_us,
            "metadata": dict(C._map(metadata, "metadata")) if metadata else {}}


Iter = Iterable
