"""maos.aio -- maos.AsyncClient: the asyncio client, pipelined.

Responsibilities: one Unix-socket connection per client, a reader task
that takes every frame in order (maos._core.Core) and resolves the future
of the request whose rid it answers, so any number of requests may be in
flight at once (asyncio.gather of many appends is one pipeline);
subscriptions as async iterators; reconnect with backoff that resumes
every subscription after its last delivered event, like libmaos-client.

Invariants:
  - frames are taken in arrival order by the one reader task, so a
    subscribe reply registers its server id before that subscription's
    first push is taken;
  - when the connection breaks, every request in flight fails with
    ConnectionLost (a write's outcome is then unknown: re-send with ids);
    the next call or subscription read reconnects (one at a time, under a
    lock) unless reconnect is off or reconnect_max has passed;
  - a request's wait is bounded by `timeout`; running out drops the
    connection (a late reply could still arrive) and raises Timeout.
Thread-safety: an AsyncClient belongs to the event loop that opened it.
"""
from __future__ import annotations

import asyncio
import builtins
import collections
import datetime as _dt
import functools
import socket
import time
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, TypeVar, Union)

from . import _core as C
from . import _ops as O
from . import errors as E
from .types import (AppendResult, CaughtUp, DeadResult, EnqueueResult, Entry, Event,
                    FellBehind, Message, NackResult, PutResult, QueueInfo, StreamInfo,
                    StreamMeta, Task)

T = TypeVar("T")
Item = Union[Event, Entry, CaughtUp, FellBehind, Message]
# what undoes a request's success when no one waits for its reply any more
Late = Callable[["_Conn", Dict[Any, Any]], None]


def _retrieved(f: "asyncio.Future[Any]") -> None:
    """A done callback for a request no caller awaits: its outcome is
    taken, so asyncio never reports it as lost."""
    if not f.cancelled():
        f.exception()


class _Conn:
    """One connection: its streams, reader task and requests in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.futs: dict[int, asyncio.Future[Any]] = {}
        self.task: Optional[asyncio.Task[None]] = None
        self.dead: Optional[E.Error] = None
        self.drain_lock = asyncio.Lock()
        self.out: list[bytes] = []   # frames queued in this turn of the loop
        # append() calls of this turn of the loop, sent together (_send_appends)
        self.appends: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        self.flush_scheduled = False
        self.last_io = time.monotonic()  # the last byte read (request timeout)
        self.watchdog: Optional[asyncio.TimerHandle] = None
        # rids of calls that take as long as maosd's work (backup, compact):
        # the request timeout does not count them (_run_long)
        self.long: set[int] = set()
        # rid -> what to do with its reply if its caller stopped waiting
        # (_submit's late: tasks claimed or a lock taken for no one)
        self.late: dict[int, Late] = {}

    def flush(self) -> None:
        """Write every frame queued in this turn of the loop at once (one
        system call for a whole burst of pipelined requests)."""
        self.flush_scheduled = False
        if self.out and self.dead is None:
            data = b"".join(self.out)
            self.out.clear()
            self.writer.write(data)


class AsyncClient:
    """An asyncio connection to maosd.  ``async with maos.AsyncClient() as a: ...``

    Arguments as for maos.Client.  Calls may run concurrently: they are
    pipelined on the one connection and matched by rid."""

    def __init__(self, path: Optional[str] = None, *, timeout: Optional[float] = C.REQUEST_TIMEOUT,
                 connect_timeout: float = C.CONNECT_TIMEOUT, reconnect: bool = True,
                 reconnect_max: float = C.RECONNECT_MAX, client_name: str = "maos-python-asyncio",
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
        self.server = ""
        self.reconnects = 0
        self._conn: Optional[_Conn] = None
        self._ever = False
        self._closed = False
        self._down_since: Optional[float] = None
        self._lock: Optional[asyncio.Lock] = None
        self._agent: Optional[O.Call[PutResult]] = None
        self._waiters: set[asyncio.Event] = set()

    # ---- connection ---------------------------------------------------------------

    async def connect(self) -> "AsyncClient":
        """Connect and say hello (also done by ``async with`` and the first call)."""
        await self._ensure()
        return self

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        uids = C.trust_path(self.path, self.server_uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            try:
                await asyncio.wait_for(loop.sock_connect(s, self.path), self.connect_timeout)
            except asyncio.TimeoutError:
                raise E.Timeout(f"cannot connect to {self.path} within "
                                f"{self.connect_timeout:g} s")
            except OSError as e:
                raise E.ConnectionLost(f"cannot connect to {self.path}: {e.strerror}",
                                       code="CONNECT")
            C.trust_peer(s, uids, self.path)
            reader, writer = await asyncio.open_unix_connection(sock=s, limit=1 << 20)
        except BaseException:
            s.close()
            raise
        self.core.reset()
        conn = _Conn(reader, writer)
        conn.task = asyncio.create_task(self._read_loop(conn))
        self._conn = conn
        try:
            rep = await asyncio.wait_for(
                self._send(conn, "hello", C.hello_body(self.client_name, self.token)),
                self.connect_timeout)
        except asyncio.TimeoutError:
            self._kill(conn, E.Timeout(f"no hello reply from {self.path}"))
            raise E.Timeout(f"no hello reply from {self.path} within "
                            f"{self.connect_timeout:g} s")
        except E.Error:
            self._kill(conn, E.ConnectionLost("hello refused"))
            raise
        self.server = rep["server"]

    async def _read_loop(self, conn: _Conn) -> None:
        try:
            while True:
                data = await conn.reader.read(self.core.reader.wanted())
                conn.last_io = time.monotonic()
                if not data:
                    raise E.ConnectionLost(f"connection to {self.path} closed by the server")
                for payload in self.core.reader.feed(data):
                    got = self.core.take(payload)
                    if got is None:
                        continue
                    fut = conn.futs.pop(got[0], None)
                    late = conn.late.pop(got[0], None)
                    if fut is not None and not fut.done():
                        if isinstance(got[2], E.Error):
                            fut.set_exception(got[2])
                        else:
                            fut.set_result(got[2])
                    elif late is not None and isinstance(got[2], dict):
                        late(conn, got[2])  # a success no one waits for
        except asyncio.CancelledError:
            raise
        except E.Error as e:  # ConnectionLost, a rid-0 error (OVERLOADED, ...), violation
            self._kill(conn, e)
        except OSError as e:
            self._kill(conn, E.ConnectionLost(f"connection to {self.path} lost: {e.strerror}"))

    def _give_back(self, conn: _Conn, rep: dict[Any, Any]) -> None:
        """claim's late (_submit): a claim answered after its caller stopped
        waiting (the task cancelled, asyncio.wait_for ran out): its tasks
        are released at once (the attempt does not count) instead of
        staying leased to no one until the lease runs out."""
        for t in rep.get("tasks") or ():
            try:
                f = self._submit(conn, "release", {"task": t["id"], "token": t["token"]})
            except (E.Error, KeyError, TypeError):
                return  # the connection is over (its leases end with it) or a bad reply
            f.add_done_callback(_retrieved)

    def _kill(self, conn: _Conn, why: E.Error) -> None:
        """The connection is over: fail what is in flight, wake subscribers."""
        if conn.dead is not None:
            return
        conn.dead = why
        for fut in conn.futs.values():
            if not fut.done():
                fut.set_exception(why)
        conn.futs.clear()
        if conn.watchdog is not None:
            conn.watchdog.cancel()
            conn.watchdog = None
        try:
            conn.writer.close()
        except Exception:
            pass
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()
        if self._conn is conn:
            self._conn = None
            self.core.reset()
            if self._down_since is None:
                self._down_since = time.monotonic()
        for w in self._waiters:
            w.set()

    async def _ensure(self) -> _Conn:
        if self._closed:
            raise E.ConnectionLost("the client is closed")
        conn = self._conn
        if conn is not None and conn.dead is None:
            return conn
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            conn = self._conn
            if conn is not None and conn.dead is None:
                return conn
            if not self._ever:
                await self._open()
                self._ever = True
            else:
                await self._reconnect()
            assert self._conn is not None
            return self._conn

    async def _reconnect(self) -> None:
        if not self.reconnect:
            raise E.ConnectionLost(f"not connected to {self.path} (reconnect is off)")
        if self._down_since is None:
            self._down_since = time.monotonic()
        down_since = self._down_since
        delay = 0.0
        while True:
            try:
                await self._open()
                conn = self._conn
                assert conn is not None
                if self._agent is not None:
                    await self._send(conn, self._agent.op, self._agent.body)
                for s in list(self.core.all_subs):
                    op = {"events": "subscribe", "channel": "subscribe_channel",
                          "watch": "watch"}[s.kind]
                    await self._send(conn, op, s.resume_body(), s)
                self._down_since = None
                self.reconnects += 1
                return
            except (E.UntrustedServer, E.ProtocolViolation):
                raise
            except (E.ConnectionLost, E.Overloaded, E.ShuttingDown) as e:
                if self._conn is not None:
                    self._kill(self._conn, e)
                if time.monotonic() - down_since >= self.reconnect_max:
                    raise E.ConnectionLost(f"gave up reconnecting after "
                                           f"{self.reconnect_max:g} s: {e.message}")
            delay = min(C.RECONNECT_MAX_DELAY, delay * 2 if delay else C.RECONNECT_MIN_DELAY)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        self._closed = True
        conn = self._conn
        if conn is not None:
            self._kill(conn, E.ConnectionLost("the client is closed"))
            if conn.task is not None:
                try:
                    await conn.task
                except (asyncio.CancelledError, Exception):
                    pass
            try:
                await conn.writer.wait_closed()
            except Exception:
                pass

    async def __aenter__(self) -> "AsyncClient":
        await self._ensure()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- requests ----------------------------------------------------------------------

    def _submit(self, conn: _Conn, op: str, body: Union[Mapping[str, Any], C.Packed],
                sub: Optional[C.SubState] = None, late: Optional[Late] = None
                ) -> "asyncio.Future[Any]":
        """Queue one request (written with the rest of this loop turn's) and
        return the future its reply resolves: no task, no coroutine.  late:
        called with a successful reply that comes when its future is done
        already (its caller gave up), to undo what no one will use."""
        if conn.dead is not None:
            d = conn.dead  # a fresh one of its class: never raise one object twice
            raise type(d)(d.message, code=d.code)
        rid, data = self.core.encode(op, body, sub)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if late is not None:
            conn.late[rid] = late
        if len(conn.futs) <= len(conn.long):
            conn.last_io = time.monotonic()  # the wait starts now
        conn.futs[rid] = fut
        if self.timeout is not None and conn.watchdog is None:
            conn.watchdog = loop.call_later(self.timeout, self._watch, conn)
        conn.out.append(data)
        if not conn.flush_scheduled:
            conn.flush_scheduled = True
            loop.call_soon(self._flush, conn)
        return fut

    async def _drain(self, conn: _Conn) -> None:
        """Wait while over a MiB is queued in the transport (the daemon reads
        slower than we write)."""
        try:
            if conn.writer.transport.get_write_buffer_size() > 1 << 20:
                async with conn.drain_lock:
                    await conn.writer.drain()
        except (OSError, RuntimeError) as e:
            self._kill(conn, E.ConnectionLost(f"connection to {self.path} lost: {e}"))

    async def _send(self, conn: _Conn, op: str, body: Mapping[str, Any],
                    sub: Optional[C.SubState] = None, late: Optional[Late] = None
                    ) -> dict[Any, Any]:
        fut = self._submit(conn, op, body, sub, late)
        await self._drain(conn)
        return await fut  # type: ignore[no-any-return]

    def _watch(self, conn: _Conn) -> None:
        """The request timeout, one timer per connection: requests are
        waiting and nothing arrived for `timeout` s -> drop the connection
        (a late reply could still come) and fail them with Timeout."""
        conn.watchdog = None
        if conn.dead is not None or self.timeout is None:
            return
        idle = time.monotonic() - conn.last_io
        waiting = len(conn.futs) > len(conn.long)  # not only long calls
        if waiting and idle >= self.timeout:
            self._kill(conn, E.Timeout(f"no reply from {self.path} within {self.timeout:g} s "
                                       f"(the connection is dropped)"))
            return
        if conn.futs:
            conn.watchdog = asyncio.get_running_loop().call_later(
                max(0.001, self.timeout - idle if waiting else self.timeout), self._watch, conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            conn.flush()
        except (OSError, RuntimeError) as e:
            self._kill(conn, E.ConnectionLost(f"connection to {self.path} lost: {e}"))

    async def _run(self, call: O.Call[T], late: Optional[Late] = None) -> T:
        conn = await self._ensure()
        return self._convert(conn, call.convert,
                             await self._send(conn, call.op, call.body, late=late))

    async def _run_long(self, call: O.Call[T], timeout: Optional[float],
                        late: Optional[Late] = None) -> T:
        """A call whose reply comes when maosd's work is done, however long
        that is (backup, compact): the request timeout does not apply, only
        `timeout` (s) if given -- then Timeout, the connection kept (the
        work goes on in maosd; its late reply is dropped)."""
        timeout = C.seconds(timeout, "timeout")
        conn = await self._ensure()
        fut = self._submit(conn, call.op, call.body, late=late)
        rid = self.core.last_rid  # fut's (_submit encoded it just now)
        conn.long.add(rid)
        try:
            rep = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise E.Timeout(f"no reply to {call.op} from {self.path} within {timeout:g} s "
                            f"(maosd goes on with it)") from None
        finally:
            conn.long.discard(rid)
            if not fut.done():  # timed out or cancelled: its late reply is dropped
                conn.futs.pop(rid, None)
                fut.cancel()
        return self._convert(conn, call.convert, rep)

    def _convert(self, conn: _Conn, convert: Callable[[Any], T], rep: Any) -> T:
        try:
            return convert(rep)
        except E.ProtocolViolation as e:
            self._kill(conn, e)  # the reply stream can no longer be trusted
            raise

    async def _pages(self, pager: O.Pager[T]) -> AsyncIterator[T]:
        """Every item of every page.  The next page is asked for as soon as
        this page's reply is in (written at once, not at the loop's next
        turn), before its items are converted and handed out, so maosd
        reads and sends it while this side decodes and the caller works;
        left early, its reply is dropped when it comes."""
        call = pager.make(pager.first)
        conn = await self._ensure()
        rep = await self._send(conn, call.op, call.body)
        ahead: Optional[asyncio.Future[Any]] = None
        try:
            while True:
                this, got_on = call, conn  # rep came on got_on
                nxt = self._convert(got_on, pager.next_of, rep)
                if nxt is not None:
                    call = pager.make(nxt)
                    conn = await self._ensure()
                    ahead = self._submit(conn, call.op, call.body)
                    self._flush(conn)
                items, _ = self._convert(got_on, this.convert, rep)
                for it in items:
                    yield it
                if ahead is None:
                    return
                rep = await ahead
                ahead = None
        finally:
            if ahead is not None:
                if ahead.done() and not ahead.cancelled():
                    ahead.exception()  # retrieved: never logged as lost
                ahead.cancel()

    # ---- the event store ----------------------------------------------------------------

    async def ping(self) -> None:
        await self._run(O.ping())

    async def append(self, stream: str, events: Sequence[Mapping[str, Any]],
                     expect: C.Expect = "any") -> AppendResult:
        """Append events to one stream, all or none (as maos.Client.append).
        The appends called in one turn of the event loop (asyncio.gather of
        many, tasks appending side by side) go out together as one
        append_batch request: each is checked and written on its own, in
        the order called, with its own result or refusal, exactly as if
        sent one by one; a lone append is an append request."""
        body = C.append_body(stream, events, expect)
        conn = await self._ensure()
        if conn.dead is not None:
            d = conn.dead  # a fresh one of its class: never raise one object twice
            raise type(d)(d.message, code=d.code)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not conn.appends:
            loop.call_soon(self._send_appends, conn)
        conn.appends.append((body, fut))
        return await fut  # type: ignore[no-any-return]

    def _send_appends(self, conn: _Conn) -> None:
        """The appends of this turn: one as an append request, several as
        append_batch requests; each caller's future gets its own answer."""
        items = [(b, f) for b, f in conn.appends if not f.done()]  # cancelled: not sent
        conn.appends = []
        if not items:
            return
        if len(items) == 1:
            body, fut = items[0]
            try:
                inner = self._submit(conn, "append", body)
            except E.Error as e:
                fut.set_exception(e)
                return

            def one(i: asyncio.Future[Any]) -> None:
                if fut.done():
                    return
                try:
                    fut.set_result(C.to_append(i.result()))
                except E.ProtocolViolation as e:
                    self._kill(conn, e)
                    fut.set_exception(e)
                except BaseException as e:  # the refusal, or the connection's end
                    fut.set_exception(e)
            inner.add_done_callback(one)
            return
        self._send_batch(conn, [b for b, _ in items], [f for _, f in items])

    def _send_batch(self, conn: _Conn, bodies: builtins.list[dict[str, Any]],
                    futs: builtins.list[asyncio.Future[Any]]) -> None:
        for lo, hi, req in C.pack_bodies(bodies, self.core.max_frame):
            if isinstance(req, E.Error):
                futs[lo].set_exception(req)
                continue
            try:
                inner = self._submit(conn, "append_batch", req)
            except E.Error as e:
                for f in futs[lo:hi]:
                    if not f.done():
                        f.set_exception(type(e)(e.message, code=e.code))
                continue
            inner.add_done_callback(
                functools.partial(self._batch_done, conn, bodies[lo:hi], futs[lo:hi]))

    def _batch_done(self, conn: _Conn, bodies: builtins.list[dict[str, Any]],
                    futs: builtins.list[asyncio.Future[Any]],
                    inner: asyncio.Future[Any]) -> None:
        """An append_batch of append() calls answered: each future its own
        result or refusal.  A refusal of the whole request that names one
        append (bad name, rights) is that append's alone: the others are
        sent again; LIMIT and BAD_REQUEST without an index send each
        alone."""
        try:
            with C.gc_paused():
                results: builtins.list[Any] = C.batch_results(inner.result(), len(futs))
        except E.ProtocolViolation as e:
            self._kill(conn, e)  # the reply stream can no longer be trusted
            results = [e] * len(futs)
        except E.Error as e:  # refused whole, or the connection's end
            k = e.index
            if k is not None and 0 <= k < len(futs) and conn.dead is None:
                if not futs[k].done():
                    futs[k].set_exception(type(e)(e.message, code=e.code, actual=e.actual))
                rest = [i for i in range(len(futs)) if i != k]
                if rest:
                    self._send_batch(conn, [bodies[i] for i in rest], [futs[i] for i in rest])
                return
            # LIMIT (a server with lower limits), BAD_REQUEST without an
            # index (two of these calls with the same event id): each alone
            if e.code in ("LIMIT", "BAD_REQUEST") and len(futs) > 1 and conn.dead is None:
                for b, f in zip(bodies, futs):
                    self._send_batch(conn, [b], [f])
                return
            results = [type(e)(e.message, code=e.code, actual=e.actual) for _ in futs]
        except BaseException as e:
            results = [e] * len(futs)
        for f, r in zip(futs, results):
            if f.done():
                continue
            if isinstance(r, BaseException):
                f.set_exception(r)
            else:
                f.set_result(r)

    async def append_batch(self, appends: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                           expect: C.Expect = "any") -> builtins.list[AppendResult]:
        """As maos.Client.append_batch: append_batch requests of up to
        1,000 appends, each append all or none, the batch not atomic (see
        txn), every append checked before anything is sent, results in
        order; the first refusal is raised after every reply is in.
        Windows of PIPELINE_MAX requests, the next sent before the one
        before is answered (two in flight)."""
        conn = await self._ensure()
        reqs = C.batch_requests(appends, expect, self.core.max_frame)
        out: builtins.list[AppendResult] = []
        err: Optional[BaseException] = None
        stop: Optional[E.Error] = None
        windows: collections.deque[builtins.list[tuple[int, asyncio.Future[Any]]]] = \
            collections.deque()
        lo = 0
        while windows or (lo < len(reqs) and stop is None):
            if lo < len(reqs) and stop is None and len(windows) < 2:
                futs: builtins.list[tuple[int, asyncio.Future[Any]]] = []
                for req in reqs[lo:lo + self.PIPELINE_MAX]:
                    try:
                        futs.append((req.n, self._submit(conn, "append_batch", req)))
                    except E.Error as e:  # the connection died
                        stop = e
                        break
                    await self._drain(conn)
                windows.append(futs)
                lo += self.PIPELINE_MAX
                continue
            # awaited one by one, not gathered: a future already resolved
            # is taken without a callback or a turn of the loop
            win = windows.popleft()
            for k, (n, fut) in enumerate(win):
                try:
                    rep = await fut
                    with C.gc_paused():
                        results = C.batch_results(rep, n)
                except E.ProtocolViolation as e:
                    self._kill(conn, e)  # the reply stream can no longer be trusted
                    for _, f in [*win[k + 1:], *(f for w in windows for f in w)]:
                        f.cancel()  # never awaited: not reported as lost
                    raise
                except E.Error as e:
                    err = err or e
                    continue
                for r in results:
                    if isinstance(r, E.Error):
                        err = err or r
                    else:
                        out.append(r)
        if err is not None:
            raise err
        if stop is not None:
            raise stop
        return out

    async def append_many(self, events: Iterable[tuple[str, Mapping[str, Any]]], *,
                          max_per_append: int = 1000) -> builtins.list[AppendResult]:
        """As maos.Client.append_many: runs of one stream's events as one
        append each, pipelined; one result per append made."""
        return await self.append_batch(C.group_appends(events, max_per_append))

    #: append_batch: requests per window (two windows in flight)
    PIPELINE_MAX = 16

    async def txn(self, appends: Optional[Sequence[Mapping[str, Any]]] = None, *,
                  ops: Optional[Sequence[Mapping[str, Any]]] = None) -> list[Any]:
        return await self._run(O.txn(appends, ops))

    def read(self, stream: str, start: Optional[int] = None, *, backward: bool = False,
             page_size: Optional[int] = None) -> AsyncIterator[Event]:
        return self._pages(O.read(stream, start, backward, page_size))

    def read_all(self, start: Optional[int] = None, *, backward: bool = False,
                 page_size: Optional[int] = None, stream: Optional[str] = None,
                 prefix: Optional[str] = None, category: Optional[str] = None,
                 types: Optional[Sequence[str]] = None,
                 since: Union[None, int, _dt.datetime] = None,
                 until: Union[None, int, _dt.datetime] = None) -> AsyncIterator[Event]:
        return self._pages(O.read_all(start, backward, page_size, stream=stream,
                                      prefix=prefix, category=category, types=types,
                                      since=since, until=until))

    def streams(self, prefix: str = "", *, after: str = "",
                page_size: Optional[int] = None) -> AsyncIterator[StreamInfo]:
        return self._pages(O.streams(prefix, after, page_size))

    async def stats(self) -> dict[str, Any]:
        return await self._run(O.stats())

    # ---- subscriptions ---------------------------------------------------------------------

    def subscribe(self, *, stream: Optional[str] = None, prefix: Optional[str] = None,
                  category: Optional[str] = None, types: Optional[Sequence[str]] = None,
                  since: Union[None, int, _dt.datetime] = None,
                  until: Union[None, int, _dt.datetime] = None, start: C.Start = "end",
                  from_version: Optional[int] = None, markers: bool = False
                  ) -> "AsyncSubscription":
        """``async for ev in a.subscribe(...)``: subscribed at the first
        iteration (or ``await sub.start()`` / ``async with``)."""
        flt = C.filter_body(stream, prefix, category, types, since, until)
        return AsyncSubscription(self, "events", "subscribe",
                                 C.subscribe_body(flt, start, from_version), markers)

    def subscribe_channel(self, pattern: str) -> "AsyncSubscription":
        return AsyncSubscription(self, "channel", "subscribe_channel",
                                 {"pattern": C._str(pattern, "pattern")}, False)

    def watch(self, table: str, prefix: str = "", *, start: Union[None, str, int] = None,
              markers: bool = False) -> "AsyncSubscription":
        return AsyncSubscription(self, "watch", "watch", O.watch_body(table, prefix, start),
                                 markers)

    async def publish(self, channel: str, payload: Any = None) -> int:
        return await self._run(O.publish(channel, payload))

    async def checkpoint_save(self, name: str, position: int) -> None:
        await self._run(O.checkpoint_save(name, position))

    async def checkpoint_get(self, name: str) -> int:
        return await self._run(O.checkpoint_get(name))

    async def checkpoint(self, name: str, default: Optional[int] = None) -> Optional[int]:
        try:
            return await self.checkpoint_get(name)
        except E.NotFound:
            return default

    # ---- tables, agents, locks, sessions ----------------------------------------------------

    async def put(self, table: str, key: str, data: Mapping[str, Any], *,
                  expect: C.Expect = "any", bind: bool = False) -> PutResult:
        return await self._run(O.put(table, key, data, expect, bind))

    async def get(self, table: str, key: str) -> Entry:
        return await self._run(O.get(table, key))

    async def delete(self, table: str, key: str, *, expect: C.Expect = "any") -> int:
        return await self._run(O.delete(table, key, expect))

    def list(self, table: str, prefix: str = "", *, where: Optional[Mapping[str, Any]] = None,
             after: str = "", page_size: Optional[int] = None) -> AsyncIterator[Entry]:
        return self._pages(O.list_(table, prefix, where, after, page_size))

    async def count(self, table: str, prefix: str = "", *,
                    where: Optional[Mapping[str, Any]] = None) -> int:
        return await self._run(O.count(table, prefix, where))

    async def agent_register(self, id: str, *, session: str = "", name: str = "",
                             kind: str = "", tags: Optional[Sequence[str]] = None,
                             details: Optional[Mapping[str, Any]] = None) -> PutResult:
        call = O.agent_register(id, session, name, kind, tags, details)
        res = await self._run(call)
        self._agent = call
        return res

    async def agent_deregister(self, id: str) -> int:
        rev = await self._run(O.agent_deregister(id))
        if self._agent is not None and self._agent.body.get("id") == id:
            self._agent = None
        return rev

    async def agent_status(self, status: str, detail: Any = None) -> int:
        return await self._run(O.agent_status(status, detail))

    async def lock(self, name: str, *, wait: Optional[float] = None) -> int:
        """As Client.lock: the fencing token; waits up to `wait` s when held."""
        deadline = None if wait is None else time.monotonic() + wait
        call = O.put("locks", name, {}, "absent", True)
        while True:
            conn = await self._ensure()
            # taken after the caller gave up (cancelled, asyncio.wait_for):
            # let go at once, or it stays held by this connection
            fut = self._submit(conn, call.op, call.body,
                               late=functools.partial(self._let_go, name))
            try:
                return self._convert(conn, call.convert, await fut).revision
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
                    item = await w.next(timeout=left)
                    if isinstance(item, Event) and item.type == "deleted" and \
                            isinstance(item.data, dict) and item.data.get("key") == name:
                        break
            finally:
                await w.close()

    def _let_go(self, name: str, conn: _Conn, rep: dict[Any, Any]) -> None:
        """lock's late (_submit): a lock taken for a caller that stopped
        waiting is deleted with its token (only if it is still that one)."""
        try:
            f = self._submit(conn, "delete", C.put_body("locks", name, None,
                                                        rep["revision"], False, delete=True))
        except (E.Error, KeyError, TypeError):
            return  # the connection is over (the lock ends with it) or a bad reply
        f.add_done_callback(_retrieved)

    async def unlock(self, name: str, token: int) -> int:
        return await self.delete("locks", name, expect=token)

    async def session_open(self, id: str, metadata: Optional[Mapping[str, Any]] = None
                           ) -> PutResult:
        now = int(time.time() * 1_000_000)
        return await self.put("sessions", id, O.session_doc(id, metadata, now),
                              expect="absent")

    async def session_close(self, id: str, result: Any = None) -> PutResult:
        e = await self.get("sessions", id)
        doc = dict(e.data)
        doc.update(state="closed", closed=int(time.time() * 1_000_000))
        if result is not None:
            doc["result"] = result
        return await self.put("sessions", id, doc, expect=e.revision)

    # ---- queues ---------------------------------------------------------------------------

    async def enqueue(self, queue: str, tasks: Sequence[Mapping[str, Any]]) -> EnqueueResult:
        return await self._run(O.enqueue(queue, tasks))

    async def claim(self, queues: Union[str, Sequence[str]], *, lease_ms: Optional[int] = None,
                    wait_ms: Optional[int] = None, max: int = 1, bind: bool = False
                    ) -> builtins.list[Task]:
        """As maos.Client.claim: a wait stretches the request timeout by
        wait_ms."""
        call = O.claim(queues, lease_ms, wait_ms, max, bind)
        if not wait_ms:
            return await self._run(call, late=self._give_back)
        return await self._run_long(call, None if self.timeout is None
                                    else self.timeout + wait_ms / 1000, late=self._give_back)

    async def ack(self, task: Any, token: Optional[int] = None, *, result: Any = None) -> int:
        return await self._run(O.ack(task, token, result))

    async def nack(self, task: Any, token: Optional[int] = None, *, error: str = "",
                   retry_after_ms: Optional[int] = None) -> NackResult:
        return await self._run(O.nack(task, token, error, retry_after_ms))

    async def extend(self, task: Any, lease_ms: int, token: Optional[int] = None
                     ) -> Optional[_dt.datetime]:
        return await self._run(O.extend(task, lease_ms, token))

    async def release(self, task: Any, token: Optional[int] = None) -> int:
        return await self._run(O.release(task, token))

    async def task(self, id: C.IdLike) -> Task:
        return await self._run(O.task(id))

    async def queue_stats(self, queue: str = "") -> builtins.list[QueueInfo]:
        return await self._run(O.queue_stats(queue))

    def dead_list(self, queue: str, *, page_size: Optional[int] = None) -> AsyncIterator[Task]:
        return self._pages(O.dead_list(queue, page_size))

    def task_list(self, queue: str = "", *,
                  page_size: Optional[int] = None) -> AsyncIterator[Task]:
        return self._pages(O.task_list(queue, page_size))

    async def backup(self, path: str, *, timeout: Optional[float] = None) -> int:
        """As maos.Client.backup: no request timeout unless `timeout`."""
        return await self._run_long(O.backup(path), timeout)

    async def metrics(self) -> str:
        return await self._run(O.metrics())

    async def stream_meta(self, stream: Optional[str] = None, *,
                          category: Optional[str] = None, max_count: Optional[int] = None,
                          max_age_ms: Optional[int] = None, clear: bool = False,
                          truncate_before: Optional[int] = None,
                          delete: bool = False) -> StreamMeta:
        return await self._run(O.stream_meta(stream, category=category, max_count=max_count,
                                             max_age_ms=max_age_ms, clear=clear,
                                             truncate_before=truncate_before, delete=delete))

    async def pubkey(self) -> bytes:
        return await self._run(O.pubkey())

    async def chain_sign(self, position: int) -> tuple[bytes, bytes]:
        return await self._run(O.chain_sign(position))

    async def compact(self, *, timeout: Optional[float] = None) -> None:
        """As maos.Client.compact: no request timeout unless `timeout`."""
        return await self._run_long(O.compact(), timeout)

    async def token_create(self, name: str, scopes: Sequence[str] = (), *,
                           session: Optional[str] = None, expires_ms: int = 0,
                           uid: Optional[int] = None) -> str:
        return await self._run(O.token_create(name, scopes, session=session,
                                              expires_ms=expires_ms, uid=uid))

    async def token_list(self) -> List[Dict[str, Any]]:
        return await self._run(O.token_list())

    async def token_revoke(self, name: str) -> int:
        return await self._run(O.token_revoke(name))

    async def dead_retry(self, queue: str, task: Optional[C.IdLike] = None) -> DeadResult:
        return await self._run(O.dead_retry(queue, task))

    async def dead_purge(self, queue: str) -> DeadResult:
        return await self._run(O.dead_purge(queue))


class AsyncSubscription:
    """An async iterator over a subscription's deliveries (see
    maos.Subscription); subscribes on first use, resumes after a reconnect
    by itself, unsubscribes on close()."""

    def __init__(self, client: AsyncClient, kind: str, op: str, body: dict[str, Any],
                 markers: bool) -> None:
        self._c = client
        self._op = op
        self._s = C.SubState(kind, body)
        self._markers = markers
        self._started = False
        self._ready = asyncio.Event()
        self._s.on_item = self._ready.set

    async def start(self) -> "AsyncSubscription":
        if self._started:
            return self
        c = self._c
        conn = await c._ensure()
        c.core.add_sub(self._s)
        c._waiters.add(self._ready)
        try:
            await c._send(conn, self._op, self._s.body, self._s)
        except BaseException:
            c.core.drop_sub(self._s)
            c._waiters.discard(self._ready)
            raise
        self._started = True
        return self

    @property
    def caught_up(self) -> bool:
        return self._s.caught_up

    @property
    def fell_behind(self) -> int:
        return self._s.fell_behind

    @property
    def from_position(self) -> int:
        """The first position it considers (the first subscribe reply's `from`)."""
        return self._s.from_position

    @property
    def next_position(self) -> int:
        return self._s.next

    async def next(self, timeout: Optional[float] = None) -> Optional[Item]:
        """The next delivery, or None when nothing arrived within timeout s."""
        await self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        s = self._s
        c = self._c
        while True:
            while s.queue:
                item = s.queue.popleft()
                if type(item) is Event or self._markers \
                        or not isinstance(item, (CaughtUp, FellBehind)):
                    return item
            if s.closed:
                raise StopAsyncIteration
            if c._conn is None or c._conn.dead is not None:
                await c._ensure()   # reconnects and re-subscribes (or raises)
                continue
            self._ready.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                await asyncio.wait_for(self._ready.wait(), left)
            except asyncio.TimeoutError:
                return None

    def __aiter__(self) -> "AsyncSubscription":
        return self

    async def __anext__(self) -> Item:
        q = self._s.queue
        if q and type(q[0]) is Event:
            return q.popleft()  # the common case, without next()'s set-up
        item = await self.next()
        assert item is not None
        return item

    async def close(self) -> None:
        s = self._s
        c = self._c
        c._waiters.discard(self._ready)
        if s.closed:
            return
        sid = s.server_id
        c.core.drop_sub(s)
        conn = c._conn
        if sid and conn is not None and conn.dead is None:
            try:
                await c._send(conn, "unsubscribe", {"sub": sid})
            except (E.NotFound, E.ConnectionLost):
                pass

    def __del__(self) -> None:
        # dropped without close() (a `break` out of the loop): its pushes
        # are no longer queued; the daemon's side ends with the connection
        try:
            if not self._s.closed:
                self._c.core.drop_sub(self._s)
        except Exception:
            pass

    async def __aenter__(self) -> "AsyncSubscription":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
