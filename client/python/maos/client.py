"""maos.client -- maos.Client: the blocking client.

Responsibilities: one Unix-socket connection to maosd (trust checks,
hello), sending the Calls of maos._ops and waiting for their replies,
paging iterators, subscriptions as blocking iterators, and reconnect with
backoff (50 ms doubling to 2 s, giving up after reconnect_max seconds)
that re-subscribes every subscription after its last delivered event and
registers the agent again, like libmaos-client.

Invariants:
  - one request at a time is waited for; pushes that arrive meanwhile go to
    their subscription's queue (maos._core.Core), never lost;
  - a call that meets a broken connection raises ConnectionLost (its
    outcome is unknown for a write: re-send with ids); the next call, or
    the next subscription read, reconnects;
  - every wait on the socket is bounded by `timeout` (no byte for that
    long: Timeout, a ConnectionLost), except a subscription's wait for a
    delivery, which is bounded by its own timeout argument.
Thread-safety: a Client is for one thread at a time (lock around it to
share one); distinct Clients are independent.
"""
from __future__ import annotations

import builtins
import collections
import datetime as _dt
import select
import socket
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    TypeVar, Union)

from . import _core as C
from . import _ops as O
from . import errors as E
from .types import (AppendResult, CaughtUp, DeadResult, EnqueueResult, Entry, Event,
                    FellBehind, Message, NackResult, PutResult, QueueInfo, StreamInfo,
                    StreamMeta, Task)

T = TypeVar("T")


class Client:
    """A blocking connection to maosd.  ``with maos.Client() as c: ...``

    path: the socket (default: $MAOS_SOCKET or the C client's default).
    timeout: seconds without progress before a request fails (None: none).
    reconnect: reconnect and resume after a lost connection (default on).
    token: an access token's text (``maosctl token create`` printed it;
    default: $MAOS_TOKEN, else none): the connection gets the token's scopes
    within what its uid may do.  A token the daemon refuses raises
    Unauthenticated (never retried); a request its scopes do not allow
    raises Forbidden.
    """

    def __init__(self, path: Optional[str] = None, *, timeout: Optional[float] = C.REQUEST_TIMEOUT,
                 connect_timeout: float = C.CONNECT_TIMEOUT, reconnect: bool = True,
                 reconnect_max: float = C.RECONNECT_MAX, client_name: str = "maos-python",
                 server_uid: Optional[int] = None, token: Any = None) -> None:
        self.path = path or C.default_socket()
        self.timeout = C.seconds(timeout, "timeout")
        self.connect_timeout = C.seconds(connect_timeout, "connect_timeout") or C.CONNECT_TIMEOUT
        self.reconnect = reconnect
        self.reconnect_max = reconnect_max
        self.client_name = client_name
        self.server_uid = C.server_uid_from_env(server_uid)
        self.token = C.token_from_env(token)
        self.core = C.Core()
        self.sock: Optional[socket.socket] = None
        self.server = ""
        self.reconnects = 0
        self._down_since: Optional[float] = None
        self._closed = False
        self._agent: Optional[O.Call[PutResult]] = None
        self._replies: dict[int, Any] = {}   # rid -> reply dict or Error, not yet taken
        self._discard: set[int] = set()      # rids whose replies are dropped on arrival
        self._conns = 0                      # connections made (a page's rid is of one)
        self._connect()

    # ---- connection ----------------------------------------------------------------

    def _connect(self) -> None:
        """Trust checks, connect, hello: within connect_timeout."""
        deadline = time.monotonic() + self.connect_timeout
        uids = C.trust_path(self.path, self.server_uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.connect_timeout)
            try:
                s.connect(self.path)
            except OSError as e:
                raise E.ConnectionLost(f"cannot connect to {self.path}: {e.strerror}",
                                       code="CONNECT")
            C.trust_peer(s, uids, self.path)
        except BaseException:
            s.close()
            raise
        self.core.reset()
        self._replies.clear()
        self._discard.clear()
        self.sock = s
        self._conns += 1
        try:
            rep = self._roundtrip("hello", C.hello_body(self.client_name, self.token), deadline)
        except E.Error:
            self._drop()
            raise
        self.server = rep["server"]

    def _drop(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.core.reset()

    def _lost(self, why: str) -> E.ConnectionLost:
        self._drop()
        if self._down_since is None:
            self._down_since = time.monotonic()
        return E.ConnectionLost(why)

    def _ensure(self) -> None:
        """Connected, or reconnect (blocking, with backoff) when allowed."""
        if self._closed:
            raise E.ConnectionLost("the client is closed")
        if self.sock is not None:
            return
        if not self.reconnect:
            raise E.ConnectionLost(f"not connected to {self.path} (reconnect is off)")
        if self._down_since is None:
            self._down_since = time.monotonic()
        down_since = self._down_since
        delay = 0.0
        while True:
            try:
                self._connect()
                self._resume()
                self._down_since = None
                self.reconnects += 1
                return
            except (E.UntrustedServer, E.ProtocolViolation):
                raise
            except (E.ConnectionLost, E.Overloaded, E.ShuttingDown) as e:
                self._drop()
                if time.monotonic() - down_since >= self.reconnect_max:
                    raise E.ConnectionLost(f"gave up reconnecting after "
                                           f"{self.reconnect_max:g} s: {e.message}")
            delay = min(C.RECONNECT_MAX_DELAY, delay * 2 if delay else C.RECONNECT_MIN_DELAY)
            time.sleep(delay)

    def _resume(self) -> None:
        """After a reconnect: the agent again, then every subscription after
        its last delivered event."""
        if self._agent is not None:
            self._roundtrip(self._agent.op, self._agent.body)
        for s in list(self.core.all_subs):
            op = {"events": "subscribe", "channel": "subscribe_channel",
                  "watch": "watch"}[s.kind]
            self._roundtrip(op, s.resume_body(), sub=s)

    def close(self) -> None:
        """Close the connection (subscriptions end; the daemon releases bound
        entries and claims of this connection)."""
        self._closed = True
        self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests ----------------------------------------------------------------------

    def _send(self, data: bytes, deadline: Optional[float]) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(self._left(deadline))
            self.sock.sendall(data)
        except socket.timeout:
            raise self._timeout()
        except OSError as e:
            self._salvage()
            raise self._lost(f"connection to {self.path} lost while sending: {e.strerror}")

    def _salvage(self) -> None:
        """The peer closed while we sent: a last error it sent first (rid 0:
        OVERLOADED, LIMIT, ...) says why; raise that instead."""
        assert self.sock is not None
        try:
            self.sock.settimeout(0.5)
            data = b""
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        try:
            for payload in self.core.reader.feed(data):
                self.core.take(payload)
        except E.ConnectionLost:
            return
        except E.Error as e:
            self._lost("")
            raise e

    def _left(self, deadline: Optional[float]) -> Optional[float]:
        if deadline is None:
            return self.timeout
        return max(0.001, deadline - time.monotonic())

    def _timeout(self) -> E.Timeout:
        self._drop()
        if self._down_since is None:
            self._down_since = time.monotonic()
        return E.Timeout(f"no reply from {self.path} in time")

    def _pump(self, wait: Optional[float]) -> bool:
        """Read once (waiting up to `wait` s; None: forever) and take every
        whole frame.  False when nothing arrived in time."""
        assert self.sock is not None
        try:
            self.sock.settimeout(wait)
            data = self.sock.recv(self.core.reader.wanted())
        except socket.timeout:
            return False
        except OSError as e:
            raise self._lost(f"connection to {self.path} lost: {e.strerror}")
        if not data:
            raise self._lost(f"connection to {self.path} closed by the server")
        self._take(data)
        return True

    def _take(self, data: bytes) -> None:
        """Every whole frame of data: replies kept by rid, pushes queued."""
        try:
            for payload in self.core.reader.feed(data):
                got = self.core.take(payload)
                if got is not None:
                    if got[0] in self._discard:
                        self._discard.discard(got[0])  # a page no one waits for
                    else:
                        self._replies[got[0]] = got[2]
        except E.Error as e:  # the connection is over (rid-0 error, protocol violation)
            self._drop()
            if self._down_since is None:
                self._down_since = time.monotonic()
            raise e

    def _pipeline(self, op: str, bodies: Sequence[Union[Mapping[str, Any], C.Packed]],
                  take: Callable[[int, Any], None]) -> None:
        """Every body sent as a request of op, pipelined; take(i, reply)
        called with the reply to bodies[i] (a dict, or the Error of a
        refusal) in order, as soon as it and those before it are in (so
        the caller's work on it overlaps maosd's on the later ones).

        At most PIPELINE_MAX requests in flight and PIPELINE_BYTES queued:
        the more in flight, the more of them share one commit group (one
        fsync).  The socket is non-blocking meanwhile and poll() says when
        to send more and when to read, so sending never waits on a peer
        that waits for its replies to be read.  A request that cannot be
        encoded (FrameTooLarge) stops the sending; it is raised once the
        replies of the requests sent before it are in."""
        sock = self.sock
        assert sock is not None
        n = len(bodies)
        out = bytearray()
        rids: collections.deque[int] = collections.deque()
        i = taken = 0
        stop: Optional[E.Error] = None
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        wait_ms = None if self.timeout is None else max(1, int(self.timeout * 1000))
        sock.settimeout(0.0)
        try:
            replies = self._replies
            while True:
                while rids and rids[0] in replies:
                    take(taken, replies.pop(rids.popleft()))
                    taken += 1
                if not rids and (stop is not None or i == n):
                    break
                while stop is None and i < n and len(rids) < self.PIPELINE_MAX \
                        and len(out) < self.PIPELINE_BYTES:
                    try:
                        rid, data = self.core.encode(op, bodies[i])
                    except E.Error as e:
                        stop = e
                        break
                    out += data
                    rids.append(rid)
                    i += 1
                if out:
                    try:
                        del out[:sock.send(out)]
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        self._salvage()
                        raise self._lost(f"connection to {self.path} lost while sending: "
                                         f"{e.strerror}")
                poller.modify(sock, select.POLLIN | (select.POLLOUT if out else 0))
                ready = poller.poll(wait_ms)
                if not ready:
                    raise self._timeout()
                if ready[0][1] & ~select.POLLOUT:  # readable, or hung up / error
                    try:
                        data = sock.recv(self.core.reader.wanted())
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        raise self._lost(f"connection to {self.path} lost: {e.strerror}")
                    if not data:
                        raise self._lost(f"connection to {self.path} closed by the server")
                    self._take(data)
        finally:
            if self.sock is sock:
                sock.settimeout(self.timeout)
        if stop is not None:
            raise stop

    def _roundtrip(self, op: str, body: Mapping[str, Any], deadline: Optional[float] = None,
                   sub: Optional[C.SubState] = None) -> dict[Any, Any]:
        if self.sock is None:
            raise E.ConnectionLost("not connected")
        rid, data = self.core.encode(op, body, sub)
        self._send(data, deadline)
        while rid not in self._replies:
            if not self._pump(self._left(deadline)):
                raise self._timeout()
        rep = self._replies.pop(rid)
        if isinstance(rep, E.Error):
            raise rep
        return rep  # type: ignore[no-any-return]

    def _run(self, call: O.Call[T]) -> T:
        self._ensure()
        return self._convert(call.convert, self._roundtrip(call.op, call.body))

    def _run_long(self, call: O.Call[T], timeout: Optional[float]) -> T:
        """A call whose reply comes when maosd's work is done, however long
        that is (backup, compact): the request timeout does not apply, only
        `timeout` (s) if given (then Timeout, as any request's)."""
        saved, self.timeout = self.timeout, C.seconds(timeout, "timeout")
        try:
            return self._run(call)
        finally:
            self.timeout = saved

    def _pages(self, pager: O.Pager[T]) -> Iterator[T]:
        """Every item of every page.  The next page is asked for as soon as
        this page's reply is in, before its items are converted and handed
        out, so maosd reads and sends it while this side decodes and the
        caller works (one page ahead, never more).  A page asked for on a
        connection that has since been replaced is asked for again; one no
        one waits for any more (the loop left early) is dropped."""
        call = pager.make(pager.first)
        ahead: Optional[tuple[int, int]] = None  # (rid, connection) of the next page
        try:
            while True:
                if ahead is not None and ahead[1] == self._conns and self.sock is not None:
                    rid, ahead = ahead[0], None
                    rep = self._wait(rid)
                else:
                    ahead = None
                    self._ensure()
                    rep = self._roundtrip(call.op, call.body)
                this, nxt = call, self._convert(pager.next_of, rep)
                if nxt is not None:
                    call = pager.make(nxt)
                    try:
                        self._ensure()
                        rid, data = self.core.encode(call.op, call.body)
                        self._send(data, None)
                        ahead = (rid, self._conns)
                    except E.ConnectionLost:
                        ahead = None  # asked again (reconnecting) after these items
                items, _ = self._convert(this.convert, rep)
                yield from items
                if nxt is None:
                    return
        finally:
            if ahead is not None and ahead[1] == self._conns and self.sock is not None:
                if self._replies.pop(ahead[0], None) is None:
                    self._discard.add(ahead[0])

    def _wait(self, rid: int) -> Any:
        """The reply to a request sent before (raised if a refusal)."""
        while rid not in self._replies:
            if not self._pump(self.timeout):
                raise self._timeout()
        rep = self._replies.pop(rid)
        if isinstance(rep, E.Error):
            raise rep
        return rep

    def _convert(self, convert: Callable[[Any], T], rep: Any) -> T:
        try:
            return convert(rep)
        except E.ProtocolViolation:
            self._lost("")  # the reply stream can no longer be trusted
            raise

    # ---- the event store ----------------------------------------------------------------

    def ping(self) -> None:
        self._run(O.ping())

    def append(self, stream: str, events: Sequence[Mapping[str, Any]],
               expect: C.Expect = "any") -> AppendResult:
        """Append events ({type, data?, meta?, id?}) to one stream, all or none.
        expect: "any", "no_stream", "exists" or the stream's last version."""
        return self._run(O.append(stream, events, expect))

    def append_batch(self, appends: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                     expect: C.Expect = "any") -> builtins.list[AppendResult]:
        """Many appends, each all or none and durable when this returns, the
        batch not atomic (see txn): sent as append_batch requests (up to
        1,000 appends each, pipelined), which maosd checks and writes append
        by append, in order.  Results in order.  Every append is checked
        before anything is sent (InvalidArgument; FrameTooLarge for one
        append over the server's max_frame: nothing sent).  The first
        refusal is raised after every reply has been taken; the other
        appends are written."""
        self._ensure()
        reqs = C.batch_requests(appends, expect, self.core.max_frame)
        out: builtins.list[AppendResult] = []
        err: Optional[E.Error] = None

        def take(i: int, rep: Any) -> None:
            nonlocal err
            if isinstance(rep, E.Error):
                err = err or rep
                return
            with C.gc_paused():
                results = C.batch_results(rep, reqs[i].n)
            for r in results:
                if isinstance(r, E.Error):
                    err = err or r
                else:
                    out.append(r)

        try:
            self._pipeline("append_batch", reqs, take)
        except E.ProtocolViolation:
            self._lost("")  # the reply stream can no longer be trusted
            raise
        if err is not None:
            raise err
        return out

    def append_many(self, events: Iterable[tuple[str, Mapping[str, Any]]], *,
                    max_per_append: int = 1000) -> builtins.list[AppendResult]:
        """Bulk loading: (stream, event) pairs, each run of consecutive
        events of one stream sent as one append (at most max_per_append
        events), the appends pipelined as by append_batch.  One result per
        append made, in order; every event lands in its stream in the order
        given (expect "any").  Not atomic as a whole: see txn."""
        return self.append_batch(C.group_appends(events, max_per_append))

    #: _pipeline: requests in flight at most, and bytes queued for sending
    PIPELINE_MAX = 4096
    PIPELINE_BYTES = 1 << 20

    def txn(self, appends: Optional[Sequence[Mapping[str, Any]]] = None, *,
            ops: Optional[Sequence[Mapping[str, Any]]] = None) -> list[Any]:
        """All or nothing: appends=[{stream, events, expect?}] or ops=[{op: ...}]."""
        return self._run(O.txn(appends, ops))

    def read(self, stream: str, start: Optional[int] = None, *, backward: bool = False,
             page_size: Optional[int] = None) -> Iterator[Event]:
        """The events of one stream from version `start`, paging under the hood."""
        return self._pages(O.read(stream, start, backward, page_size))

    def read_all(self, start: Optional[int] = None, *, backward: bool = False,
                 page_size: Optional[int] = None, stream: Optional[str] = None,
                 prefix: Optional[str] = None, category: Optional[str] = None,
                 types: Optional[Sequence[str]] = None,
                 since: Union[None, int, _dt.datetime] = None,
                 until: Union[None, int, _dt.datetime] = None) -> Iterator[Event]:
        """The global log by position, filtered, paging under the hood."""
        return self._pages(O.read_all(start, backward, page_size, stream=stream,
                                      prefix=prefix, category=category, types=types,
                                      since=since, until=until))

    def streams(self, prefix: str = "", *, after: str = "",
                page_size: Optional[int] = None) -> Iterator[StreamInfo]:
        return self._pages(O.streams(prefix, after, page_size))

    def stats(self) -> dict[str, Any]:
        return self._run(O.stats())

    # ---- subscriptions --------------------------------------------------------------------

    def _subscribe(self, kind: str, op: str, body: dict[str, Any], markers: bool
                   ) -> "Subscription":
        self._ensure()
        s = C.SubState(kind, body)
        self.core.add_sub(s)
        try:
            self._roundtrip(op, body, sub=s)
        except BaseException:
            self.core.drop_sub(s)
            raise
        return Subscription(self, s, markers)

    def subscribe(self, *, stream: Optional[str] = None, prefix: Optional[str] = None,
                  category: Optional[str] = None, types: Optional[Sequence[str]] = None,
                  since: Union[None, int, _dt.datetime] = None,
                  until: Union[None, int, _dt.datetime] = None, start: C.Start = "end",
                  from_version: Optional[int] = None, markers: bool = False
                  ) -> "Subscription":
        """Stored events from `start` ("start", "end" or a position), then
        live; each exactly once, in position order, across reconnects."""
        flt = C.filter_body(stream, prefix, category, types, since, until)
        return self._subscribe("events", "subscribe",
                               C.subscribe_body(flt, start, from_version), markers)

    def subscribe_channel(self, pattern: str) -> "Subscription":
        """Channel messages whose name matches the glob (at most once)."""
        return self._subscribe("channel", "subscribe_channel",
                               {"pattern": C._str(pattern, "pattern")}, False)

    def watch(self, table: str, prefix: str = "", *, start: Union[None, str, int] = None,
              markers: bool = False) -> "Subscription":
        """Entries (as Entry) then every change (as Event of the entry streams)."""
        return self._subscribe("watch", "watch", O.watch_body(table, prefix, start), markers)

    def publish(self, channel: str, payload: Any = None) -> int:
        return self._run(O.publish(channel, payload))

    def checkpoint_save(self, name: str, position: int) -> None:
        self._run(O.checkpoint_save(name, position))

    def checkpoint_get(self, name: str) -> int:
        return self._run(O.checkpoint_get(name))

    def checkpoint(self, name: str, default: Optional[int] = None) -> Optional[int]:
        """checkpoint_get, or `default` when the name is unknown."""
        try:
            return self.checkpoint_get(name)
        except E.NotFound:
            return default

    # ---- tables, agents, locks, sessions -----------------------------------------------------

    def put(self, table: str, key: str, data: Mapping[str, Any], *, expect: C.Expect = "any",
            bind: bool = False) -> PutResult:
        return self._run(O.put(table, key, data, expect, bind))

    def get(self, table: str, key: str) -> Entry:
        return self._run(O.get(table, key))

    def delete(self, table: str, key: str, *, expect: C.Expect = "any") -> int:
        return self._run(O.delete(table, key, expect))

    def list(self, table: str, prefix: str = "", *, where: Optional[Mapping[str, Any]] = None,
             after: str = "", page_size: Optional[int] = None) -> Iterator[Entry]:
        return self._pages(O.list_(table, prefix, where, after, page_size))

    def count(self, table: str, prefix: str = "", *,
              where: Optional[Mapping[str, Any]] = None) -> int:
        return self._run(O.count(table, prefix, where))

    def agent_register(self, id: str, *, session: str = "", name: str = "", kind: str = "",
                       tags: Optional[Sequence[str]] = None,
                       details: Optional[Mapping[str, Any]] = None) -> PutResult:
        """Register this connection's agent (registered again after a reconnect)."""
        call = O.agent_register(id, session, name, kind, tags, details)
        res = self._run(call)
        self._agent = call
        return res

    def agent_deregister(self, id: str) -> int:
        rev = self._run(O.agent_deregister(id))
        if self._agent is not None and self._agent.body.get("id") == id:
            self._agent = None
        return rev

    def agent_status(self, status: str, detail: Any = None) -> int:
        return self._run(O.agent_status(status, detail))

    def lock(self, name: str, *, wait: Optional[float] = None) -> int:
        """Take lock `name` (bound to this connection); returns its fencing
        token.  wait: None fails at once with WrongRevision when held, else
        seconds to wait for the holder to let go (Timeout after)."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                return self.put("locks", name, {}, expect="absent", bind=True).revision
            except E.WrongRevision as e:
                if deadline is None:
                    raise
                held = e.actual if e.actual is not None and e.actual >= 0 else None
            w = self.watch("locks", name, start=held if held is not None else "now")
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise E.Timeout(f"lock {name} still held after {wait:g} s")
                    item = w.next(timeout=left)
                    if isinstance(item, Event) and item.type == "deleted" and \
                            isinstance(item.data, dict) and item.data.get("key") == name:
                        break
            finally:
                w.close()

    def unlock(self, name: str, token: int) -> int:
        return self.delete("locks", name, expect=token)

    def session_open(self, id: str, metadata: Optional[Mapping[str, Any]] = None) -> PutResult:
        """A session entry (a client convention: PROTOCOL.md "Sessions")."""
        now = int(time.time() * 1_000_000)
        return self.put("sessions", id, O.session_doc(id, metadata, now), expect="absent")

    def session_close(self, id: str, result: Any = None) -> PutResult:
        e = self.get("sessions", id)
        doc = dict(e.data)
        doc.update(state="closed", closed=int(time.time() * 1_000_000))
        if result is not None:
            doc["result"] = result
        return self.put("sessions", id, doc, expect=e.revision)

    # ---- queues ---------------------------------------------------------------------------

    def enqueue(self, queue: str, tasks: Sequence[Mapping[str, Any]]) -> EnqueueResult:
        return self._run(O.enqueue(queue, tasks))

    def claim(self, queues: Union[str, Sequence[str]], *, lease_ms: Optional[int] = None,
              wait_ms: Optional[int] = None, max: int = 1, bind: bool = False) -> builtins.list[Task]:
        """Lease up to `max` ready tasks of `queues` (in the order given);
        none ready: wait up to wait_ms for one (the request timeout is
        stretched by wait_ms, as the C client's is), else []."""
        call = O.claim(queues, lease_ms, wait_ms, max, bind)
        if not wait_ms:
            return self._run(call)
        return self._run_long(call, None if self.timeout is None
                              else self.timeout + wait_ms / 1000)

    def ack(self, task: Any, token: Optional[int] = None, *, result: Any = None) -> int:
        return self._run(O.ack(task, token, result))

    def nack(self, task: Any, token: Optional[int] = None, *, error: str = "",
             retry_after_ms: Optional[int] = None) -> NackResult:
        return self._run(O.nack(task, token, error, retry_after_ms))

    def extend(self, task: Any, lease_ms: int, token: Optional[int] = None
               ) -> Optional[_dt.datetime]:
        return self._run(O.extend(task, lease_ms, token))

    def release(self, task: Any, token: Optional[int] = None) -> int:
        return self._run(O.release(task, token))

    def task(self, id: C.IdLike) -> Task:
        return self._run(O.task(id))

    def queue_stats(self, queue: str = "") -> builtins.list[QueueInfo]:
        return self._run(O.queue_stats(queue))

    def dead_list(self, queue: str, *, page_size: Optional[int] = None) -> Iterator[Task]:
        return self._pages(O.dead_list(queue, page_size))

    def task_list(self, queue: str = "", *, page_size: Optional[int] = None) -> Iterator[Task]:
        """Every task of `queue` ("": of every queue), in any state, by id."""
        return self._pages(O.task_list(queue, page_size))

    def backup(self, path: str, *, timeout: Optional[float] = None) -> int:
        """An online, consistent copy of the store in the new directory
        `path` (absolute; made by the daemon); the head position it holds.
        Off the data directory's file system maosd copies the files before
        it answers: this waits for it, without the request timeout unless
        `timeout` (s) is given (as maosctl backup)."""
        return self._run_long(O.backup(path), timeout)

    def metrics(self) -> str:
        """Every figure in the Prometheus text exposition format."""
        return self._run(O.metrics())

    def stream_meta(self, stream: Optional[str] = None, *, category: Optional[str] = None,
                    max_count: Optional[int] = None, max_age_ms: Optional[int] = None,
                    clear: bool = False, truncate_before: Optional[int] = None,
                    delete: bool = False) -> StreamMeta:
        """Retention of a stream or a category: set a rule (max_count and/or
        max_age_ms), clear it, truncate a stream before a version, delete
        it; with no change, report.  Removed events leave reads of the
        stream at once and $all when the daemon's removal pass has run."""
        return self._run(O.stream_meta(stream, category=category, max_count=max_count,
                                       max_age_ms=max_age_ms, clear=clear,
                                       truncate_before=truncate_before, delete=delete))

    def pubkey(self) -> bytes:
        """The daemon's ed25519 public key (32 bytes) that signs $chain."""
        return self._run(O.pubkey())

    def chain_sign(self, position: int) -> tuple[bytes, bytes]:
        """(hash, signature): the daemon hashes the stored record at
        position and signs it (PROTOCOL.md "Signed checkpoints")."""
        return self._run(O.chain_sign(position))

    def compact(self, *, timeout: Optional[float] = None) -> None:
        """Compact the store now (the space of removed events comes back);
        root and the daemon's user only.  Waits until it is done (minutes
        on a large store), without the request timeout unless `timeout`
        (s) is given."""
        return self._run_long(O.compact(), timeout)

    def token_create(self, name: str, scopes: Sequence[str] = (), *,
                     session: Optional[str] = None, expires_ms: int = 0,
                     uid: Optional[int] = None) -> str:
        """A new access token (needs scope admin): its text, shown this once.
        scopes: "read:PREFIX", "kv.write:TABLE/PREFIX", "admin", ...; session:
        add what an agent of that session needs; expires_ms: 0 never; uid:
        only connections of that uid may use it."""
        return self._run(O.token_create(name, scopes, session=session, expires_ms=expires_ms,
                                        uid=uid))

    def token_list(self) -> List[Dict[str, Any]]:
        """Every token (never the secret)."""
        return self._run(O.token_list())

    def token_revoke(self, name: str) -> int:
        """Delete a token and close its connections; how many were closed."""
        return self._run(O.token_revoke(name))

    def dead_retry(self, queue: str, task: Optional[C.IdLike] = None) -> DeadResult:
        return self._run(O.dead_retry(queue, task))

    def dead_purge(self, queue: str) -> DeadResult:
        return self._run(O.dead_purge(queue))


Item = Union[Event, Entry, CaughtUp, FellBehind, Message]


class Subscription:
    """A blocking iterator over a subscription's deliveries.

    Yields Event (subscribe, watch changes), Entry (watch snapshot) or
    Message (channels); with markers=True also CaughtUp / FellBehind.
    ``caught_up`` and ``fell_behind`` show the state either way.  After a
    lost connection it reconnects and resumes after the last delivered
    event by itself.  close() (or leaving a ``with`` block) unsubscribes."""

    def __init__(self, client: Client, state: C.SubState, markers: bool) -> None:
        self._c = client
        self._s = state
        self._markers = markers

    @property
    def caught_up(self) -> bool:
        return self._s.caught_up

    @property
    def fell_behind(self) -> int:
        """How many times the daemon switched it to disk reads."""
        return self._s.fell_behind

    @property
    def from_position(self) -> int:
        """The first position it considers (the first subscribe reply's `from`)."""
        return self._s.from_position

    @property
    def next_position(self) -> int:
        """The position to resume from (last delivered + 1 or later)."""
        return self._s.next

    def next(self, timeout: Optional[float] = None) -> Optional[Item]:
        """The next delivery, or None when nothing arrived within timeout s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        s = self._s
        while True:
            while s.queue:
                item = s.queue.popleft()
                if type(item) is Event or self._markers \
                        or not isinstance(item, (CaughtUp, FellBehind)):
                    return item
            if s.closed:
                raise StopIteration
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                self._c._ensure()
                self._c._pump(left)
            except E.ConnectionLost:
                if not self._c.reconnect or isinstance(self._c, Client) and self._c._closed:
                    raise

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Item:
        q = self._s.queue
        if q and type(q[0]) is Event:  # the common case, without next()'s set-up
            return q.popleft()
        item = self.next()
        assert item is not None
        return item

    def close(self) -> None:
        s = self._s
        if s.closed:
            return
        sid = s.server_id
        self._c.core.drop_sub(s)
        if sid and self._c.sock is not None:
            try:
                self._c._run(O.unsubscribe(sid))
            except E.NotFound:
                pass

    def __del__(self) -> None:
        # dropped without close() (a `break` out of the loop): its pushes
        # are no longer queued; the daemon's side ends with the connection
        try:
            if not self._s.closed:
                self._c.core.drop_sub(self._s)
        except Exception:
            pass

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
