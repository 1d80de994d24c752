"""maos._core -- the one protocol core under maos.Client and maos.AsyncClient.

Responsibilities (no I/O here: both clients drive it with their sockets):
  - the default socket path and the trust checks of libmaos-client
    (client/trust.c) before connect and on the peer after it;
  - framing (4-byte big-endian length + one msgpack value) and a frame
    reader that refuses a length of 0 or over max_frame + 64 KiB;
  - request bodies, built in the key order of proto/msg.c's encoders so
    that the same request is the same bytes from every client
    (proto/vectors/ checks it);
  - rid allocation and matching: every request sent is remembered with its
    op until its reply; a reply is checked for the fields PROTOCOL.md says
    it must hold before anything is taken from it (ProtocolViolation);
  - error replies -> maos.errors exceptions;
  - pushes -> the subscription they belong to: each subscription keeps
    `next`, the position to resume from, so a reconnect re-subscribes
    after the last delivered event (no gap, no duplicate).

Invariants:
  - a subscribe reply is taken in frame order, before any later frame, so
    every push of that subscription finds its server id registered;
  - a subscription never hands out an event at or below the last position
    it delivered (a duplicate after a resume would be a bug, not data);
  - nothing here blocks, sleeps or logs.
"""
from __future__ import annotations

import collections
import datetime as _dt
import gc
import os
import socket
import stat
import struct
import uuid
from typing import Any, Callable, Deque, Iterable, Mapping, Optional, Sequence, Union

import msgpack

from . import errors as E
from .types import (AppendResult, CaughtUp, EnqueueResult, Entry, Event,
                    FellBehind, Message, NackResult, PutResult, QueueInfo, StreamInfo,
                    Task, datetime_to_us, us_to_datetime, uuid_from_bytes)

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
REPLY_SLACK = 65536
SYSTEM_SOCKET_DIR = "/run/maos"
RECONNECT_MIN_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0
RECONNECT_MAX = 30.0
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0

IdLike = Union[uuid.UUID, str, bytes]
Expect = Union[str, int]
Start = Union[str, int]


# ---- socket path and trust ------------------------------------------------------

def default_socket() -> str:
    """$MAOS_SOCKET when set and not empty; as root /run/maos/maosd.sock;
    else $XDG_RUNTIME_DIR/maos/maosd.sock or /tmp/maos-$UID/maosd.sock."""
    env = os.environ.get("MAOS_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return SYSTEM_SOCKET_DIR + "/maosd.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return xdg + "/maos/maosd.sock"
    return f"/tmp/maos-{os.geteuid()}/maosd.sock"


def server_uid_from_env(server_uid: Optional[int]) -> Optional[int]:
    if server_uid:
        return server_uid
    v = os.environ.get("MAOS_SERVER_UID")
    if not v:
        return None
    if not v.isdigit():
        raise E.ConnectionLost(f"MAOS_SERVER_UID is not a uid: {v!r}", code="CONNECT")
    return int(v)


def _is_system_dir(st: os.stat_result, sysdir: str) -> bool:
    try:
        s = os.stat(sysdir)
        if (s.st_dev, s.st_ino) != (st.st_dev, st.st_ino):
            return False
        ps = os.lstat(os.path.dirname(sysdir) or "/")
    except OSError:
        return False
    return stat.S_ISDIR(ps.st_mode) and ps.st_uid == 0 and not ps.st_mode & 0o022


def trust_path(path: str, server_uid: Optional[int] = None,
               sysdir: str = SYSTEM_SOCKET_DIR) -> frozenset[int]:
    """client/trust.c maosc_trust_path: check the socket's directory before
    connecting; returns the uids the server may run as.  UntrustedServer or
    ConnectionLost(code CONNECT) with the reason."""
    d = os.path.dirname(path) or "."
    try:
        st = os.lstat(d)
    except OSError as e:
        raise E.ConnectionLost(f"cannot connect to {path}: {d}: {e.strerror}", code="CONNECT")
    if stat.S_ISLNK(st.st_mode):
        raise E.UntrustedServer(f"refusing {path}: its directory {d} is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise E.ConnectionLost(f"cannot connect to {path}: {d} is not a directory",
                               code="CONNECT")
    uids = {os.geteuid(), 0}
    if server_uid:
        uids.add(server_uid)
    if _is_system_dir(st, sysdir):
        uids.add(st.st_uid)
    who = ", ".join(str(u) for u in sorted(uids))
    if st.st_uid not in uids:
        raise E.UntrustedServer(f"refusing {path}: its directory {d} belongs to uid "
                                f"{st.st_uid} (trusted: {who})")
    if st.st_mode & 0o022:
        if not st.st_mode & stat.S_ISVTX:
            raise E.UntrustedServer(f"refusing {path}: its directory {d} is writable by "
                                    f"group or others (mode {st.st_mode & 0o7777:04o})")
        try:
            sk = os.lstat(path)
        except OSError as e:
            raise E.ConnectionLost(f"cannot connect to {path}: {e.strerror}", code="CONNECT")
        if not stat.S_ISSOCK(sk.st_mode):
            raise E.UntrustedServer(f"refusing {path}: not a socket (in the shared "
                                    f"directory {d})")
        if sk.st_uid not in uids:
            raise E.UntrustedServer(f"refusing {path}: the socket belongs to uid "
                                    f"{sk.st_uid} in the shared directory {d} (trusted: {who})")
    return frozenset(uids)


def trust_peer(sock: socket.socket, uids: frozenset[int], path: str) -> None:
    """After connect(), before any byte is sent: the server's uid must be trusted."""
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", cred)
    if uid not in uids:
        raise E.UntrustedServer(f"refusing {path}: the server runs as uid {uid}")


# ---- framing ----------------------------------------------------------------------

def pack(obj: Any) -> bytes:
    """One msgpack value, as libmaos encodes it (str as str, bytes as bin)."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


_LEN = struct.Struct(">I").pack


def frame(payload: bytes) -> bytes:
    return _LEN(len(payload)) + payload


def unpack(payload: bytes) -> Any:
    """Exactly one msgpack value; anything else is a ProtocolViolation.
    Strings that are not UTF-8 keep their bytes (surrogateescape), so data
    re-encodes to what was stored."""
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False,
                               unicode_errors="surrogateescape")
    except Exception as e:  # msgpack raises several types: all mean "malformed"
        raise E.ProtocolViolation(f"malformed frame from the server: {e}")


class FrameReader:
    """Bytes in, whole payloads out.  A length of 0 or over the limit is a
    ProtocolViolation (the stream can no longer be trusted)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.buf = bytearray()
        self.limit = max_frame + REPLY_SLACK

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        off = 0
        n = len(self.buf)
        while n - off >= 4:
            (ln,) = struct.unpack_from(">I", self.buf, off)
            if ln == 0 or ln > self.limit:
                raise E.ProtocolViolation(f"bad frame length {ln} from the server "
                                          f"(limit {self.limit})")
            if n - off - 4 < ln:
                break
            out.append(bytes(self.buf[off + 4:off + 4 + ln]))
            off += 4 + ln
        if off:
            del self.buf[:off]
        return out

    def wanted(self) -> int:
        """How many bytes are still missing of the frame being received
        (at least 1): a reader can ask for this much at once."""
        if len(self.buf) < 4:
            return 65536
        ln: int = struct.unpack_from(">I", self.buf, 0)[0]
        return max(65536, ln + 4 - len(self.buf))


# ---- argument checks and conversions --------------------------------------------------

def _bad(msg: str) -> E.InvalidArgument:
    return E.InvalidArgument(msg)


def _iterable(v: Any, what: str) -> Iterable[Any]:
    """v if it is a collection to walk (not a str, bytes or dict), else
    InvalidArgument naming `what`."""
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise _bad(f"{what} expected, got {type(v).__name__}")
    return v


def seconds(v: Any, what: str) -> Optional[float]:
    """A bound in seconds: None (no bound) or a number > 0 and < 1e9, else
    InvalidArgument (socket and asyncio refuse the rest with their own
    errors, later: ValueError, OverflowError)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e9:
        raise _bad(f"{what} must be None or seconds > 0, got {v!r}")
    return float(v)


def _uint(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 1 << 64:
        raise _bad(f"{what} must be an unsigned integer, got {v!r}")
    return int(v)


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise _bad(f"{what} must be a str, got {type(v).__name__}")
    return v


def _map(v: Any, what: str) -> dict[Any, Any]:
    if not isinstance(v, dict):
        raise _bad(f"{what} must be a dict, got {type(v).__name__}")
    return v


def id_bytes(v: IdLike, what: str = "id") -> bytes:
    """uuid.UUID, its text form or 16 bytes -> the 16 bytes sent as bin."""
    if isinstance(v, uuid.UUID):
        return v.bytes
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return bytes(v)
    if isinstance(v, str):
        try:
            return uuid.UUID(v).bytes
        except ValueError:
            pass
    raise _bad(f"{what} must be a uuid.UUID, its text form or 16 bytes, got {v!r}")


def _time_us(v: Union[int, _dt.datetime], what: str) -> int:
    if isinstance(v, _dt.datetime):
        try:
            return datetime_to_us(v)
        except ValueError as e:
            raise _bad(f"{what}: {e}")
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _bad(f"{what} must be an aware datetime or microseconds, got {v!r}")


def _expect(v: Expect, table: bool) -> Union[str, int]:
    words = ("any", "absent", "exists") if table else ("any", "no_stream", "exists")
    if isinstance(v, str):
        if v not in words:
            raise _bad(f"expect must be one of {', '.join(words)} or a number, got {v!r}")
        return v
    return _uint(v, "expect")


# event dicts whose keys are already in the order of enc_event (and need
# no conversion: no id) are sent as they are
_EVENT_AS_IS = {("type",), ("type", "data"), ("type", "meta"), ("type", "data", "meta")}


def event_body(ev: Mapping[str, Any]) -> dict[str, Any]:
    """An event spec {type, data?, meta?, id?} in the order of enc_event."""
    if type(ev) is dict and tuple(ev) in _EVENT_AS_IS and type(ev["type"]) is str \
            and ev.get("data", 0) is not None and type(ev.get("meta", _EMPTY)) is dict:
        return ev  # the fast path of every pipelined append: nothing to convert
    if type(ev) is not dict and not isinstance(ev, Mapping):
        raise _bad(f"an event must be a dict with 'type', got {type(ev).__name__}")
    for k in ev:
        if k not in ("type", "data", "meta", "id"):
            raise _bad(f"unknown event key {k!r} (type, data, meta, id)")
    out: dict[str, Any] = {"type": _str(ev.get("type"), "event type")}
    if ev.get("id") is not None:
        out["id"] = id_bytes(ev["id"], "event id")
    if ev.get("data") is not None:
        out["data"] = ev["data"]
    if ev.get("meta") is not None:
        out["meta"] = _map(ev["meta"], "event meta")
    return out


_EMPTY: dict[str, Any] = {}


def append_body(stream: str, events: Sequence[Mapping[str, Any]],
                expect: Expect = "any") -> dict[str, Any]:
    if type(events) is not list and (isinstance(events, (Mapping, str, bytes))
                                     or not isinstance(events, Sequence)) or not events:
        raise _bad("events must be a non-empty list of event dicts")
    return {"stream": _str(stream, "stream"), "expect": _expect(expect, False),
            "events": [event_body(e) for e in events]}


class gc_paused:
    """Python's cyclic collector paused (when it was on) for a stretch of
    code that makes many objects that live on: a batch's request bodies,
    its results, a page of records and their Events.  Otherwise the
    collector runs again and again while they pile up, each full pass
    walking every object of the program: 40% of the client's CPU in
    append_batch, 15-20% of a replay's (bench.py).  Only around code that
    does not await or block, and put back as it was even on an error.  A
    class, not a generator: entering and leaving costs a fraction of a
    microsecond."""
    __slots__ = ("was",)

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: Any) -> None:
        if self.was:
            gc.enable()


#: append_batch requests: appends and events in one at most (maosd takes
#: 10,000 of each; smaller requests let the next be encoded while maosd
#: writes this one)
BATCH_APPENDS = 1000
BATCH_EVENTS = 10000
#: bytes of an append_batch request besides its appends array (op, rid,
#: the keys, the form), at most
_BATCH_HEAD = 64
# the key and value asking for results (or records) as arrays
_FORM_ARRAY = msgpack.packb("form") + msgpack.packb("array")


class Packed:
    """A request body {key: value} whose value is msgpack bytes already
    (an append_batch's appends array): what is kept of a request between
    building it and sending it is bytes, not thousands of dicts.  n: the
    appends in it."""
    __slots__ = ("key", "raw", "n")

    def __init__(self, key: str, raw: bytes, n: int) -> None:
        self.key = key
        self.raw = raw
        self.n = n


def batch_requests(appends: Iterable[tuple[str, Sequence[Mapping[str, Any]]]],
                   expect: Expect, max_frame: int) -> list[Packed]:
    """(stream, events) appends -> append_batch request bodies (pack_bodies).
    Every append is checked and packed before anything is sent: bad input
    (InvalidArgument) or one append over max_frame (FrameTooLarge) raises
    here, and nothing of the batch is sent.  The collector is paused
    meanwhile (gc_paused)."""
    ex = _expect(expect, False)
    bodies: list[dict[str, Any]] = []
    with gc_paused():
        for item in _iterable(appends, "appends: a list of (stream, events) pairs"):
            if type(item) is not tuple or len(item) != 2:
                if isinstance(item, (str, bytes, Mapping)) or not isinstance(item, Sequence) \
                        or len(item) != 2:
                    raise _bad(f"appends are (stream, events) pairs, got {item!r:.60}")
            stream, evs = item
            # append_body's work, its common case written out: one event
            # sent as it is (the list is only read, then packed)
            if type(stream) is str and type(evs) is list and len(evs) == 1 \
                    and event_body(evs[0]) is evs[0]:
                bodies.append({"stream": stream, "expect": ex, "events": evs})
            else:
                bodies.append(append_body(stream, evs, expect))
        reqs = pack_bodies(bodies, max_frame)
    out: list[Packed] = []
    for _, _, req in reqs:
        if isinstance(req, E.Error):
            raise req
        out.append(req)
    return out


# What msgpack raises for a value it cannot encode (a set, an object, an
# int over 64 bits, a str with lone surrogates, nesting too deep).
UNENCODABLE = (TypeError, ValueError, OverflowError)


def unencodable(e: BaseException, what: str) -> E.InvalidArgument:
    """The InvalidArgument for `what` that msgpack could not encode."""
    return _bad(f"{what} cannot be encoded as msgpack ({e}); it was not sent")


def pack_bodies(bodies: list[dict[str, Any]], max_frame: int
                ) -> list[tuple[int, int, Union[Packed, E.Error]]]:
    """append bodies (append_body) -> append_batch request bodies as
    (first, end, request) over bodies[first:end], in order, within
    BATCH_APPENDS, BATCH_EVENTS and max_frame; an append alone over
    max_frame gets its FrameTooLarge in place of a request, one that msgpack
    cannot encode its InvalidArgument (unencodable)."""
    out: list[tuple[int, int, Union[Packed, E.Error]]] = []
    packb = msgpack.Packer(use_bin_type=True).pack

    def add(lo: int, hi: int) -> None:
        """bodies[lo:hi] as one request, else as halves; an append alone
        that does not go gets its error in place."""
        nonlocal packb
        why: E.Error
        try:
            raw: bytes = packb(bodies[lo:hi])
            if len(raw) + _BATCH_HEAD <= max_frame:
                out.append((lo, hi, Packed("appends", raw, hi - lo)))
                return
            why = E.FrameTooLarge(f"an append to {bodies[lo]['stream']} is {len(raw)} bytes, "
                                  f"over the server's max_frame {max_frame}; it was not sent")
        except UNENCODABLE as e:  # a value msgpack has no form for: find whose
            packb = msgpack.Packer(use_bin_type=True).pack
            why = unencodable(e, f"an append to {bodies[lo]['stream']}")
        if hi - lo == 1:
            out.append((lo, hi, why))
        else:
            add(lo, (lo + hi) // 2)
            add((lo + hi) // 2, hi)

    lo = events = 0
    for i, b in enumerate(bodies):
        k = len(b["events"])
        if i > lo and (i - lo >= BATCH_APPENDS or events + k > BATCH_EVENTS):
            add(lo, i)
            lo, events = i, 0
        events += k
    if lo < len(bodies):
        add(lo, len(bodies))
    return out


def batch_results(msg: dict[Any, Any], n: int) -> list[Union[AppendResult, E.Error]]:
    """An append_batch reply of n appends -> each append's AppendResult or
    its refusal (the maos.Error it would raise alone)."""
    res = msg["results"]
    if len(res) != n:
        raise E.ProtocolViolation(f"append_batch reply with {len(res)} results for {n} "
                                  "appends")
    out: list[Union[AppendResult, E.Error]] = []
    add = out.append
    for m in res:
        if type(m) is list:  # the array form (the request asked for it)
            add(to_append_array(m))
        elif type(m) is dict and "code" in m:
            _need(m, {"code": _S, "message": _S}, "append_batch refusal")
            add(E.from_reply(m))
        else:
            add(to_append(m))
    return out


def group_appends(events: Iterable[tuple[str, Mapping[str, Any]]], max_per_append: int
                  ) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """append_many: (stream, event) pairs -> (stream, events) appends, one
    per run of consecutive events of a stream, at most max_per_append each."""
    if _uint(max_per_append, "max_per_append") == 0:
        raise _bad("max_per_append must be at least 1")
    out: list[tuple[str, list[Mapping[str, Any]]]] = []
    cur: list[Mapping[str, Any]] = []
    last: Any = None
    for item in _iterable(events, "append_many: (stream, event) pairs"):
        if type(item) is not tuple or len(item) != 2:
            raise _bad(f"append_many takes (stream, event) pairs, got {item!r}")
        st, ev = item
        if st != last or len(cur) >= max_per_append:
            cur = []
            out.append((st, cur))
            last = st
        cur.append(ev)
    if not out:
        raise _bad("append_many: no events")
    return out


def _range(body: dict[str, Any], start: Optional[int], backward: bool,
           limit: Optional[int]) -> None:
    if start is not None:
        body["from"] = _uint(start, "start")
    if backward:
        body["backward"] = True
    if limit:
        body["limit"] = _uint(limit, "limit")


def filter_body(stream: Optional[str] = None, prefix: Optional[str] = None,
                category: Optional[str] = None, types: Optional[Iterable[str]] = None,
                since: Union[None, int, _dt.datetime] = None,
                until: Union[None, int, _dt.datetime] = None) -> dict[str, Any]:
    """The read_all / subscribe filter in the order of enc_filter_keys."""
    out: dict[str, Any] = {}
    if stream:
        out["stream"] = _str(stream, "stream")
    if prefix:
        out["prefix"] = _str(prefix, "prefix")
    if category:
        out["category"] = _str(category, "category")
    if types is not None:
        tl = [_str(t, "type") for t in _iterable(types, "types: a list of str")]
        if tl:
            out["types"] = tl
    if since is not None:
        out["since"] = _time_us(since, "since")
    if until is not None:
        out["until"] = _time_us(until, "until")
    return out


def subscribe_body(flt: dict[str, Any], start: Start = "end",
                   from_version: Optional[int] = None, form: str = "array"
                   ) -> dict[str, Any]:
    """form: the records of its pushes as arrays (cheaper to decode; PROTOCOL.md
    "Record forms") or "map"; to_event takes either."""
    body = dict(flt)
    if from_version is not None:
        if not flt.get("stream"):
            raise _bad("from_version needs an exact stream=")
        body["from_version"] = _uint(from_version, "from_version")
    elif start == "end":
        body["from"] = "end"
    elif start == "start":
        body["from"] = 1
    else:
        if isinstance(start, str):
            raise _bad(f"start must be 'start', 'end' or a position, got {start!r}")
        body["from"] = _uint(start, "start")
    if form != "map":
        body["form"] = form
    return body


def put_body(table: str, key: str, data: Optional[Mapping[str, Any]], expect: Expect,
             bind: bool, delete: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"table": _str(table, "table"), "key": _str(key, "key")}
    out["expect"] = _expect(expect, True)
    if not delete:
        out["data"] = _map(data, "data") if data is not None else {}
        out["bind"] = bool(bind)
    return out


def table_query(table: str, prefix: Optional[str], where: Optional[Mapping[str, Any]]
                ) -> dict[str, Any]:
    out: dict[str, Any] = {"table": _str(table, "table")}
    if prefix:
        out["prefix"] = _str(prefix, "prefix")
    if where:
        out["where"] = _map(where, "where")
    return out


def task_spec(t: Mapping[str, Any]) -> dict[str, Any]:
    """An enqueue task spec in the order of enc_task_spec."""
    if not isinstance(t, Mapping):
        raise _bad("a task must be a dict (data, meta, priority, delay, ...)")
    keys = ("data", "meta", "priority", "delay", "not_before", "max_attempts",
            "lease_ms", "backoff_ms", "dedupe_key", "ordering_key")
    for k in t:
        if k not in keys:
            raise _bad(f"unknown task key {k!r} ({', '.join(keys)})")
    out: dict[str, Any] = {}
    if t.get("data") is not None:
        out["data"] = t["data"]
    if t.get("meta") is not None:
        out["meta"] = _map(t["meta"], "task meta")
    if t.get("priority"):
        p = t["priority"]
        if not isinstance(p, int) or isinstance(p, bool):
            raise _bad("priority must be an int")
        out["priority"] = p
    if t.get("delay") is not None:
        out["delay"] = _uint(t["delay"], "delay")
    if t.get("not_before"):
        out["not_before"] = _time_us(t["not_before"], "not_before")
    for k in ("max_attempts", "lease_ms", "backoff_ms"):
        if t.get(k):
            out[k] = _uint(t[k], k)
    for k in ("dedupe_key", "ordering_key"):
        if t.get(k):
            out[k] = _str(t[k], k)
    return out


def enqueue_body(queue: str, tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(tasks, Mapping) or not isinstance(tasks, Sequence) or not tasks:
        raise _bad("tasks must be a non-empty list of task dicts")
    return {"queue": _str(queue, "queue"), "tasks": [task_spec(t) for t in tasks]}


def claim_body(queues: Union[str, Sequence[str]], lease_ms: Optional[int],
               wait_ms: Optional[int], max: int, bind: bool) -> dict[str, Any]:
    ql = [queues] if isinstance(queues, str) else \
        list(_iterable(queues, "queues: a queue name or a list of them"))
    out: dict[str, Any] = {"queues": [_str(q, "queue") for q in ql],
                           "max": _uint(max, "max") or 1}
    if lease_ms:
        out["lease_ms"] = _uint(lease_ms, "lease_ms")
    if wait_ms:
        out["wait_ms"] = _uint(wait_ms, "wait_ms")
    if bind:
        out["bind"] = True
    return out


def task_ref(task: Any, token: Optional[int]) -> tuple[bytes, int]:
    """(id, token) from a Task (its own token) or an id plus a token."""
    if isinstance(task, Task):
        return task.id.bytes, _uint(task.token if token is None else token, "token")
    if token is None:
        raise _bad("token is required unless a Task is given")
    return id_bytes(task, "task"), _uint(token, "token")


def txn_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """One op of a txn in the ops form, in the order of maos_enc_txn_ops."""
    if not isinstance(op, Mapping) or "op" not in op:
        raise _bad("a txn op must be a dict with 'op'")
    try:
        return _txn_op(op["op"], dict(op))
    except KeyError as e:
        raise _bad(f"txn op {op['op']!r} needs {e.args[0]!r}") from None


def _txn_op(kind: Any, o: dict[str, Any]) -> dict[str, Any]:
    if kind == "append":
        return {"op": "append", **append_body(o["stream"], o["events"],
                                              o.get("expect", "any"))}
    if kind in ("put", "delete"):
        return {"op": kind, **put_body(o["table"], o["key"], o.get("data"),
                                       o.get("expect", "any"), o.get("bind", False),
                                       delete=kind == "delete")}
    if kind == "checkpoint":
        return {"op": "checkpoint", "name": _str(o["name"], "name"),
                "position": _uint(o["position"], "position")}
    if kind == "enqueue":
        return {"op": "enqueue", **enqueue_body(o["queue"], o["tasks"])}
    if kind in ("ack", "nack", "extend", "release"):
        tid, tok = task_ref(o["task"], o.get("token"))
        out: dict[str, Any] = {"op": kind, "task": tid, "token": tok}
        if kind == "ack" and o.get("result") is not None:
            out["result"] = o["result"]
        if kind == "nack":
            if o.get("error"):
                out["error"] = _str(o["error"], "error")
            if o.get("retry_after_ms") is not None:
                out["retry_after_ms"] = _uint(o["retry_after_ms"], "retry_after_ms")
        if kind == "extend":
            out["lease_ms"] = _uint(o["lease_ms"], "lease_ms")
        return out
    raise _bad(f"unknown txn op {kind!r}")


# ---- replies: required fields and conversions --------------------------------------------

_U = "uint"
_B = "bool"
_S = "str"
_L = "list"
_M = "map"
_BIN = "bin"
_I = "int"

_STAT_COUNTERS = (
    "uptime_us", "head_position", "connections", "connections_total", "requests",
    "commit_groups", "commit_requests", "commit_events", "commit_max_group",
    "commit_errors", "commit_write_us", "subscriptions", "subscriptions_live",
    "subscriptions_max_lag", "push_frames", "push_events", "fell_behind",
    "channel_subscriptions", "channel_messages", "channel_dropped", "bytes_in",
    "bytes_out", "max_frame", "connections_refused", "hello_timeouts",
    "connections_paused", "buffered_bytes", "loop_lag_max_us", "loop_lag_p99_us",
    "reads_pooled", "reads_in_memory", "reads_ahead")

_APPEND_FIELDS = {"stream": _S, "first_version": _U, "first_position": _U, "count": _U,
                  "duplicate": _B, "ids": _BIN}

REQUIRED: dict[str, dict[str, str]] = {
    "hello": {"version": _U, "server": _S, "max_frame": _U},
    "ping": {}, "unsubscribe": {}, "checkpoint_save": {},
    "append": _APPEND_FIELDS,
    "txn": {"results": _L},
    "append_batch": {"results": _L},
    "read": {"events": _L}, "read_all": {"events": _L},
    "streams": {"streams": _L},
    "stats": {"server": _S, "state": _S, "durability": _S, "head_hash": _BIN,
              **{k: _U for k in _STAT_COUNTERS}},
    "subscribe": {"sub": _U, "from": _U},
    "subscribe_channel": {"sub": _U},
    "checkpoint_get": {"position": _U},
    "publish": {"receivers": _U},
    "put": {"revision": _U, "created_revision": _U},
    "agent_register": {"revision": _U, "created_revision": _U},
    "delete": {"revision": _U}, "agent_deregister": {"revision": _U},
    "agent_status": {"revision": _U},
    "get": {"entry": _M},
    "list": {"entries": _L, "revision": _U},
    "count": {"count": _U, "revision": _U},
    "watch": {"sub": _U, "revision": _U},
    "enqueue": {"task_ids": _BIN, "duplicates": _L, "revision": _U},
    "claim": {"tasks": _L}, "dead_list": {"tasks": _L},
    "ack": {"revision": _U}, "release": {"revision": _U},
    "nack": {"revision": _U, "state": _S},
    "extend": {"lease_until": _I},
    "task": {"task": _M},
    "queue_stats": {"queues": _L},
    "dead_retry": {"count": _U, "more": _B}, "dead_purge": {"count": _U, "more": _B},
    "token_create": {"token": _S}, "token_list": {"tokens": _L}, "token_revoke": {"count": _U},
}
# replies whose `next` must be present (value may be nil)
_NEXT = {"read", "read_all", "streams", "list", "dead_list"}


def _is(v: Any, kind: str) -> bool:
    if kind == _U:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if kind == _I:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == _B:
        return isinstance(v, bool)
    if kind == _S:
        return isinstance(v, str)
    if kind == _L:
        return isinstance(v, list)
    if kind == _M:
        return isinstance(v, dict)
    return isinstance(v, bytes)


def _need(m: Any, fields: Mapping[str, str], what: str) -> dict[Any, Any]:
    if not isinstance(m, dict):
        raise E.ProtocolViolation(f"{what} is not a map")
    for k, kind in fields.items():
        if k not in m or not _is(m[k], kind):
            raise E.ProtocolViolation(f"{what} lacks {k} ({kind})")
    return m


def check_reply(op: str, msg: dict[Any, Any]) -> dict[Any, Any]:
    """The reply to `op` with every promised field, or an exception: the
    server's refusal as maos.Error, a missing field as ProtocolViolation."""
    ok = msg.get("ok")
    if ok is False:
        _need(msg, {"code": _S, "message": _S}, f"error reply to {op}")
        raise E.from_reply(msg)
    if ok is not True:
        raise E.ProtocolViolation(f"reply to {op} without ok")
    if op == "append":
        return msg  # every field is checked by to_append, which every append reply meets
    _need(msg, REQUIRED.get(op, {}), f"reply to {op}")
    if op in _NEXT and "next" not in msg:
        raise E.ProtocolViolation(f"reply to {op} lacks next")
    if op == "stats" and len(msg["head_hash"]) != 32:
        raise E.ProtocolViolation("stats reply: head_hash is not 32 bytes")
    return msg


_RECORD = {"position": _U, "time": _I, "version": _U, "stream": _S, "type": _S,
           "id": _BIN, "meta": _M}


_new = object.__new__
_setattr = object.__setattr__
_uuid = uuid_from_bytes


def to_event(r: Any) -> Event:
    """A stored record (either form, PROTOCOL.md "Record forms") -> Event.
    The hot path of every replay and subscription: the checks of _need
    written out, and the frozen dataclass
    filled without its (slow, validating) constructor, its id and time left
    as the record's bytes and microseconds until first read (maos.types):
    the values are exactly what the constructor would hold.  The record
    dict itself becomes the Event's instance dict (a field a later server
    adds is an attribute no one reads; prev missing is the default b"").
    The array form (what read, read_all and subscribe ask for) is the same
    values without their keys: their dict is made here."""
    if type(r) is list:
        return _array_event(r)
    try:
        pos, t, ver, st, ty, i, meta = (r["position"], r["time"], r["version"], r["stream"],
                                        r["type"], r["id"], r["meta"])
        r["data"]
    except (KeyError, TypeError):
        _need(r, _RECORD, "event record")
        raise E.ProtocolViolation("event record without data")
    if (type(pos) is not int or pos < 0 or type(ver) is not int or ver < 0
            or type(t) is not int or type(st) is not str or type(ty) is not str
            or type(i) is not bytes or len(i) != 16 or type(meta) is not dict):
        _need(r, _RECORD, "event record")
        raise E.ProtocolViolation("event record: bad id")
    # the decoded record becomes the instance dict (it is no one else's):
    # id and time renamed to the raw fields maos.types builds them from
    del r["id"], r["time"]
    r["_raw_id"] = i
    r["_raw_time"] = t
    ev: Event = _new(Event)
    _setattr(ev, "__dict__", r)
    return ev


def _array_event(r: list[Any]) -> Event:
    """to_event of [position, time, version, stream, type, id, prev, data,
    meta] (a stub: removed 10th), checked as the map form is."""
    n = len(r)
    if n == 9:
        pos, t, ver, st, ty, i, prev, data, meta = r
    elif n == 10:
        pos, t, ver, st, ty, i, prev, data, meta, removed = r
    else:
        raise E.ProtocolViolation(f"event record: an array of {n} values, want 9 or 10")
    if (type(pos) is not int or pos < 0 or type(ver) is not int or ver < 0
            or type(t) is not int or type(st) is not str or type(ty) is not str
            or type(i) is not bytes or len(i) != 16 or type(meta) is not dict
            or type(prev) is not bytes):
        raise E.ProtocolViolation(f"event record: malformed array {r!r:.120}")
    d = {"position": pos, "_raw_time": t, "version": ver, "stream": st, "type": ty,
         "_raw_id": i, "prev": prev, "data": data, "meta": meta}
    if n == 10:
        d["removed"] = removed
    ev: Event = _new(Event)
    _setattr(ev, "__dict__", d)
    return ev


def to_append(m: Any) -> AppendResult:
    """An append reply (or a txn's append result) -> AppendResult: the
    hot path of pipelined appends, checks written out, no constructor."""
    try:
        st, fv, fp, cnt, dup, ids = (m["stream"], m["first_version"], m["first_position"],
                                     m["count"], m["duplicate"], m["ids"])
    except (KeyError, TypeError):
        _need(m, _APPEND_FIELDS, "append result")
        raise  # _need raised
    if type(st) is not str or type(dup) is not bool or type(ids) is not bytes \
            or type(fv) is not int or type(fp) is not int or type(cnt) is not int \
            or fv < 0 or fp < 0 or cnt < 0:
        _need(m, _APPEND_FIELDS, "append result")
    if len(ids) != 16 * cnt:
        raise E.ProtocolViolation("append result: ids is not 16 * count bytes")
    return _append_result(st, fv, fp, cnt, dup, ids)


def _append_result(st: str, fv: int, fp: int, cnt: int, dup: bool, ids: bytes) -> AppendResult:
    """An AppendResult of checked values, without the constructor; ids
    built on first read (maos.types)."""
    r: AppendResult = _new(AppendResult)
    _setattr(r, "__dict__", {"stream": st, "first_version": fv, "first_position": fp,
                             "count": cnt, "duplicate": dup, "_raw_ids": ids})
    return r


def to_append_array(m: list[Any]) -> AppendResult:
    """An append result in the array form, [stream, first_version,
    first_position, count, duplicate, ids] -> AppendResult."""
    if len(m) != 6:
        raise E.ProtocolViolation(f"append result: an array of {len(m)} values, want 6")
    st, fv, fp, cnt, dup, ids = m
    if type(st) is not str or type(dup) is not bool or type(ids) is not bytes \
            or type(fv) is not int or type(fp) is not int or type(cnt) is not int \
            or fv < 0 or fp < 0 or cnt < 0 or len(ids) != 16 * cnt:
        raise E.ProtocolViolation("append result: an array of the wrong types")
    return _append_result(st, fv, fp, cnt, dup, ids)


_ENTRY = {"table": _S, "key": _S, "revision": _U, "created_revision": _U, "created": _I,
          "updated": _I, "data": _M, "bound": _B}


def to_entry(m: Any) -> Entry:
    _need(m, _ENTRY, "entry")
    return Entry(table=m["table"], key=m["key"], revision=m["revision"],
                 created_revision=m["created_revision"],
                 created=us_to_datetime(m["created"]), updated=us_to_datetime(m["updated"]),
                 data=m["data"], bound=m["bound"])


_TASK = {"id": _BIN, "queue": _S, "state": _S, "attempt": _U, "max_attempts": _U,
         "priority": _I, "meta": _M, "enqueued": _I, "not_before": _I, "token": _U,
         "lease_until": _I, "history": _L}


def _opt_time(us: int) -> Optional[_dt.datetime]:
    return us_to_datetime(us) if us else None


def to_task(m: Any) -> Task:
    _need(m, _TASK, "task")
    for k in ("data", "dedupe_key", "ordering_key", "last_error", "result"):
        if k not in m:
            raise E.ProtocolViolation(f"task lacks {k}")
    if len(m["id"]) != 16:
        raise E.ProtocolViolation("task id is not 16 bytes")
    return Task(id=uuid.UUID(bytes=m["id"]), queue=m["queue"], state=m["state"],
                attempt=m["attempt"], max_attempts=m["max_attempts"],
                priority=m["priority"], data=m["data"], meta=m["meta"],
                enqueued=us_to_datetime(m["enqueued"]), not_before=_opt_time(m["not_before"]),
                dedupe_key=m["dedupe_key"], ordering_key=m["ordering_key"],
                last_error=m["last_error"], result=m["result"], token=m["token"],
                lease_until=_opt_time(m["lease_until"]), history=tuple(m["history"]))


_QINFO = {"queue": _S, "ready": _U, "delayed": _U, "blocked": _U, "leased": _U,
          "done": _U, "dead": _U, "waiting": _U, "oldest_ready": _I}


def to_queue_info(m: Any) -> QueueInfo:
    _need(m, _QINFO, "queue_stats element")
    return QueueInfo(queue=m["queue"], ready=m["ready"], delayed=m["delayed"],
                     blocked=m["blocked"], leased=m["leased"], done=m["done"],
                     dead=m["dead"], waiting=m["waiting"],
                     oldest_ready=_opt_time(m["oldest_ready"]))


def to_stream_info(m: Any) -> StreamInfo:
    _need(m, {"stream": _S, "head": _U, "count": _U, "last_position": _U}, "streams element")
    return StreamInfo(m["stream"], m["head"], m["count"], m["last_position"])


def to_enqueue(m: dict[Any, Any]) -> EnqueueResult:
    ids = m["task_ids"]
    if len(ids) % 16 or len(ids) // 16 != len(m["duplicates"]):
        raise E.ProtocolViolation("enqueue reply: task_ids and duplicates disagree")
    return EnqueueResult(tuple(uuid.UUID(bytes=ids[i:i + 16]) for i in range(0, len(ids), 16)),
                         tuple(bool(d) for d in m["duplicates"]), m["revision"])


def txn_result(kind: str, m: Any) -> Any:
    """One element of a txn reply, read knowing the kind of its op."""
    if kind == "append":
        return to_append(m)
    if kind == "put":
        _need(m, REQUIRED["put"], "txn put result")
        return PutResult(m["revision"], m["created_revision"])
    if kind in ("delete", "ack", "release"):
        return _need(m, {"revision": _U}, f"txn {kind} result")["revision"]
    if kind == "checkpoint":
        return None
    if kind == "enqueue":
        return to_enqueue(_need(m, REQUIRED["enqueue"], "txn enqueue result"))
    if kind == "nack":
        _need(m, REQUIRED["nack"], "txn nack result")
        return NackResult(m["revision"], m["state"])
    if kind == "extend":
        return _opt_time(_need(m, REQUIRED["extend"], "txn extend result")["lease_until"])
    return m


# ---- subscriptions -----------------------------------------------------------------

SubItem = Union[Event, Entry, CaughtUp, FellBehind, Message]


class SubState:
    """A subscription's state, kept across reconnects.

    kind: "events" (subscribe), "channel" (subscribe_channel) or "watch".
    next: the position to resume from (events/watch): the `next` of the
    last push taken, or the `from` of the subscribe reply.  The queue holds
    what arrived and was not yet handed out."""

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        self.kind = kind
        self.body = body            # the request body of the first subscribe
        self.server_id = 0
        self.next = 0
        self.last_position = 0      # last event position put in the queue
        self.from_position = 0      # the `from` of the first subscribe reply
        self.waiting_version: Optional[int] = body.get("from_version")
        self.entries_open = kind == "watch" and "from" not in body
        self.queue: Deque[SubItem] = collections.deque()
        self.caught_up = False
        self.fell_behind = 0
        self.closed = False
        self.on_item: Optional[Callable[[], None]] = None

    def resume_body(self) -> dict[str, Any]:
        """The body that subscribes again after a lost connection."""
        if self.kind == "channel":
            return dict(self.body)
        if self.kind == "watch":
            body = {k: v for k, v in self.body.items() if k != "from"}
            if not self.entries_open:
                body["from"] = self.next - 1
            return body
        body = {k: v for k, v in self.body.items()
                if k not in ("from", "from_version", "form")}
        if self.waiting_version is not None:
            body["from_version"] = self.waiting_version
        else:
            body["from"] = self.next
        if "form" in self.body:  # last, as subscribe_body puts it
            body["form"] = self.body["form"]
        return body

    def _put(self, item: SubItem) -> None:
        self.queue.append(item)

    def take_reply(self, msg: dict[Any, Any]) -> None:
        self.server_id = msg["sub"]
        if self.kind == "events" and not self.from_position:
            self.from_position = msg["from"]
        if self.kind == "events":
            if msg["from"] == 0:
                raise E.ProtocolViolation("subscribe reply with from 0")
            self.next = msg["from"]
        elif self.kind == "watch":
            self.next = msg["revision"] + 1
        self.caught_up = False

    def push(self, msg: dict[Any, Any]) -> None:
        kind = msg["push"]
        if kind == "events":
            _need(msg, {"events": _L, "next": _U}, "events push")
            with gc_paused():  # a frame of Events that live on (gc_paused)
                evs = [to_event(r) for r in msg["events"]]
            last = self.last_position
            put = self.queue.append
            for ev in evs:
                if ev.position > last:  # else already delivered: never twice
                    last = ev.position
                    put(ev)
            if last != self.last_position:
                self.last_position = last
                self.waiting_version = None
            self.next = msg["next"]
        elif kind == "caught_up":
            _need(msg, {"next": _U}, "caught_up push")
            self.caught_up = True
            self.next = max(self.next, msg["next"])
            self._put(CaughtUp(msg["next"]))
        elif kind == "fell_behind":
            _need(msg, {"next": _U}, "fell_behind push")
            self.caught_up = False
            self.fell_behind += 1
            self._put(FellBehind(msg["next"]))
        elif kind == "message":
            _need(msg, {"channel": _S}, "message push")
            self._put(Message(msg["channel"], msg.get("payload")))
        elif kind == "entries":
            _need(msg, {"entries": _L, "revision": _U, "more": _B}, "entries push")
            for e in msg["entries"]:
                self._put(to_entry(e))
            if not msg["more"]:
                self.entries_open = False
        if self.on_item is not None:
            self.on_item()


# ---- the connection-independent request/reply state ------------------------------------

class Core:
    """rids, pending requests, the frame reader and the subscriptions of one
    client.  A new connection calls reset(); subscriptions survive it."""

    def __init__(self) -> None:
        self.last_rid = 0
        self.pending: dict[int, tuple[str, Optional[SubState]]] = {}
        self.reader = FrameReader()
        self.max_frame = DEFAULT_MAX_FRAME
        self.subs: dict[int, SubState] = {}     # server id -> subscription
        self.all_subs: list[SubState] = []      # in creation order
        self._pack = msgpack.Packer(use_bin_type=True).pack  # reused: one per client

    def reset(self) -> None:
        """A new connection: replies in flight are lost, server ids are void."""
        self.pending.clear()
        self.reader = FrameReader(self.max_frame)
        self.subs.clear()
        for s in self.all_subs:
            s.server_id = 0

    def encode(self, op: str, body: Union[Mapping[str, Any], Packed],
               sub: Optional[SubState] = None) -> tuple[int, bytes]:
        """A request frame for op with a new rid; remembered as pending."""
        self.last_rid += 1
        rid = self.last_rid
        payload: bytes
        if isinstance(body, Packed):  # {op, rid, key: raw[, form]}, the keys in that order
            pk = self._pack
            payload = (b"\x84" if op == "append_batch" else b"\x83") + pk("op") + pk(op) + \
                pk("rid") + pk(rid) + pk(body.key) + body.raw
            if op == "append_batch":  # results as arrays (PROTOCOL.md "append_batch")
                payload += _FORM_ARRAY
        else:
            try:
                payload = self._pack({"op": op, "rid": rid, **body})
            except UNENCODABLE as e:
                self._pack = msgpack.Packer(use_bin_type=True).pack  # nothing half-packed kept
                raise unencodable(e, f"the {op} request") from None
        n = len(payload)
        if n > 1 << 20:  # the packer keeps its largest buffer: not a big one
            self._pack = msgpack.Packer(use_bin_type=True).pack
        if n > self.max_frame:
            raise E.FrameTooLarge(f"the request is {n} bytes, over the server's "
                                  f"max_frame {self.max_frame}; nothing was sent")
        self.pending[rid] = (op, sub)
        return rid, _LEN(n) + payload

    def forget(self, rid: int) -> None:
        self.pending.pop(rid, None)

    def hello_done(self, msg: dict[Any, Any]) -> None:
        self.max_frame = msg["max_frame"]
        self.reader.limit = self.max_frame + REPLY_SLACK

    def take(self, payload: bytes) -> Optional[tuple[int, str, Union[dict[Any, Any], E.Error]]]:
        """One frame: a push goes to its subscription (None returned); a
        reply is checked and returned as (rid, op, reply or the exception).
        Raised (the connection is over): ProtocolViolation, or the error of
        a reply with rid 0 (a refused connection, a broken frame)."""
        if len(payload) > 16384:  # a page of records that live on
            with gc_paused():
                msg = unpack(payload)
        else:
            msg = unpack(payload)
        if type(msg) is not dict:
            if not isinstance(msg, dict):
                raise E.ProtocolViolation("a frame from the server is not a map")
        if "push" in msg:
            sid = msg.get("sub")
            s = self.subs.get(sid) if isinstance(sid, int) else None
            if s is not None and not s.closed:
                s.push(msg)
            return None  # a push of an unsubscribed subscription: dropped
        rid = msg.get("rid")
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise E.ProtocolViolation("reply without rid")
        if rid == 0:
            # an error the server could not tie to a request: the connection
            # is about to close or the stream is unusable
            if msg.get("ok") is False and isinstance(msg.get("message"), str) \
                    and isinstance(msg.get("code"), str):
                raise E.from_reply(msg)  # the connection ends with it (OVERLOADED, ...)
            raise E.ProtocolViolation("reply with rid 0")
        if rid not in self.pending:
            raise E.ProtocolViolation(f"reply for rid {rid}, which is not pending")
        op, sub = self.pending.pop(rid)
        try:
            check_reply(op, msg)
        except E.ProtocolViolation:
            raise
        except E.Error as e:
            return rid, op, e
        if op == "hello":
            self.hello_done(msg)
        if sub is not None:
            sub.take_reply(msg)
            self.subs[sub.server_id] = sub
        return rid, op, msg

    def add_sub(self, s: SubState) -> None:
        self.all_subs.append(s)

    def drop_sub(self, s: SubState) -> None:
        s.closed = True
        if s in self.all_subs:
            self.all_subs.remove(s)
        if self.subs.get(s.server_id) is s:
            del self.subs[s.server_id]


def hello_body(client_name: str, token: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"version": PROTOCOL_VERSION, "client": client_name}
    if token is not None:
        body["token"] = token
    return body


def token_from_env(token: Any) -> Any:
    return token if token is not None else (os.environ.get("MAOS_TOKEN") or None)
