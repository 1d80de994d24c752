"""Every error code maosd can send arrives as its own maos.Error subclass
with code and message (provoked for real where a test can provoke it);
the mapping table itself is checked against proto/include/maos/errors.h;
a misbehaving server is a ProtocolViolation, never a crash or a hang.

Provoked against a real maosd: every request-level code, the wire-level
ones, OVERLOADED (max_connections), OUTCOME_UNKNOWN then READ_ONLY (fault
shim), SHUTTING_DOWN (maosd-fault holding a commit while SIGTERM drains)
and CORRUPT (a byte of a table file flipped, as tests/stress/test_damage.c
does).  INTERNAL cannot be provoked: see test_internal_from_the_wire."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import Any, Iterator

import msgpack
import pytest

import maos
from maos import _core, errors
from conftest import Daemon, make_daemon

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def test_mapping_matches_errors_h() -> None:
    text = open(os.path.join(ROOT, "proto/include/maos/errors.h")).read()
    codes = {name: int(num) for name, num in re.findall(r"X\((\w+), (\d+),", text)}
    server = {n: v for n, v in codes.items() if v < 100}
    assert set(server) == set(errors.SERVER_ERRORS)
    for name, num in server.items():
        cls = errors.SERVER_ERRORS[name]
        assert issubclass(cls, maos.Error) and cls.code == name and cls.number == num
        e = errors.from_reply({"code": name, "message": "m", "actual": 3, "index": 1})
        assert type(e) is cls and e.code == name and e.message == "m"
        assert e.actual == 3 and e.index == 1
    for local in (maos.ConnectionLost, maos.ProtocolViolation, maos.Timeout,
                  maos.InvalidArgument, maos.UntrustedServer):
        assert codes[local.code] == local.number
    unknown = errors.from_reply({"code": "NEW_CODE_2030", "message": "m"})
    assert type(unknown) is maos.Error and unknown.code == "NEW_CODE_2030"


def raw(sock: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock)
    return s


def send(s: socket.socket, obj: Any = None, payload: bytes | None = None) -> None:
    p = payload if payload is not None else msgpack.packb(obj, use_bin_type=True)
    s.sendall(struct.pack(">I", len(p)) + p)


def recv(s: socket.socket) -> dict[Any, Any]:
    r = _core.FrameReader()
    while True:
        data = s.recv(65536)
        assert data, "connection closed before a reply"
        frames = r.feed(data)
        if frames:
            m = _core.unpack(frames[0])
            assert isinstance(m, dict)
            return m


def mapped(reply: dict[Any, Any]) -> maos.Error:
    assert reply["ok"] is False
    return errors.from_reply(reply)


def test_wire_level_codes(sock: str) -> None:
    s = raw(sock)
    send(s, {"op": "ping", "rid": 1})
    assert isinstance(mapped(recv(s)), maos.HelloRequired)
    send(s, {"op": "hello", "rid": 2, "version": 99})
    assert isinstance(mapped(recv(s)), maos.ProtocolVersion)
    send(s, {"op": "hello", "rid": 3, "version": 1})
    assert recv(s)["ok"] is True
    send(s, payload=b"\xc1")
    assert isinstance(mapped(recv(s)), maos.BadFrame)
    send(s, {"op": "frobnicate", "rid": 4})
    assert isinstance(mapped(recv(s)), maos.UnknownOp)
    s.sendall(struct.pack(">I", 0x7FFFFFFF))
    e = mapped(recv(s))
    assert isinstance(e, maos.FrameTooLarge) and e.message
    s.close()


def test_request_level_codes(sock: str) -> None:
    with maos.Client(sock) as c:
        c.append("s-1", [{"type": "x", "id": "00000000-0000-0000-0000-00000000000a"}])
        cases: list[tuple[type[maos.Error], Any]] = [
            (maos.BadRequest, lambda: c._run(_op("read", {"stream": "s-1", "limit": 0}))),
            (maos.UnknownOp, lambda: c._run(_op("frobnicate", {}))),
            (maos.WrongExpectedVersion, lambda: c.append("s-1", [{"type": "x"}], expect=5)),
            (maos.NotFound, lambda: list(c.read("nope-1"))),
            (maos.Conflict, lambda: c.append(
                "s-2", [{"type": "x", "id": "00000000-0000-0000-0000-00000000000a"}])),
            (maos.InvalidName, lambda: c.append("$sys", [{"type": "x"}])),
            (maos.InvalidName, lambda: c.append("lock-x", [{"type": "x"}])),
            (maos.InvalidId, lambda: c._run(_op("append", {
                "stream": "s-3", "events": [{"type": "x", "id": b"\x00" * 16}]}))),
            (maos.Limit, lambda: list(c.read_all(types=[f"t{i}" for i in range(65)]))),
            (maos.Unauthorized, lambda: c.delete("agents", "x")),
            (maos.WrongRevision, lambda: c.delete("kv.a", "k", expect=3)),
            (maos.LeaseLost, lambda: c.ack(c.claim("q")[0], 1)),
        ]
        c.enqueue("q", [{"data": 1}])
        for cls, f in cases:
            with pytest.raises(cls) as ei:
                f()
            assert ei.value.code == cls.code and ei.value.message, cls
        c.ping()  # refusals leave the connection usable
        # a request over the server's max_frame is refused before sending
        with pytest.raises(maos.FrameTooLarge):
            c.append("big-1", [{"type": "x", "data": b"\x00" * (17 << 20)}])
        c.ping()


def test_bad_shapes_are_invalid_argument(sock: str) -> None:
    """Arguments of the wrong shape are the caller's maos.InvalidArgument
    (raised before anything is sent), never a bare TypeError, ValueError
    or KeyError from inside the client (these were, each seen)."""
    with maos.Client(sock) as c:
        cases: list[Any] = [
            lambda: c.append_batch(None),  # type: ignore[arg-type]
            lambda: c.append_batch(["x"]),  # type: ignore[list-item]
            lambda: c.append_batch([("s-1", [{"type": "t"}], 1)]),  # type: ignore[list-item]
            lambda: c.append_many(None),  # type: ignore[arg-type]
            lambda: c.claim(None),  # type: ignore[arg-type]
            lambda: list(c.read_all(types=-1)),  # type: ignore[arg-type]
            lambda: list(c.read_all(types="t")),
            lambda: c.session_open("s-1", metadata={1, 2}),  # type: ignore[arg-type]
            lambda: c.token_create("t-1", scopes=-1),  # type: ignore[arg-type]
            lambda: c.txn(appends={1, 2}),  # type: ignore[arg-type]
            lambda: c.txn(appends=[{"stream": "s-1"}]),
            lambda: c.txn(ops=-1),  # type: ignore[arg-type]
            lambda: c.txn(ops=[{"op": "put"}]),
            lambda: c.put("kv.t", "k", {"tags": {1, 2}}),  # msgpack has no set
            lambda: c.backup("/tmp/never", timeout=-1),  # socket's ValueError before
            lambda: c.compact(timeout="1"),  # type: ignore[arg-type]
            lambda: maos.Client(sock, timeout=0),
            lambda: maos.Client(sock, connect_timeout=float("inf")),
            lambda: maos.AsyncClient(sock, timeout=-5),
        ]
        for f in cases:
            with pytest.raises(maos.InvalidArgument):
                f()
        c.ping()
        with pytest.raises(maos.NotFound):
            list(c.read("s-1"))  # nothing was sent


def _op(op: str, body: dict[str, Any]) -> Any:
    from maos._ops import Call
    return Call(op, body, lambda m: m)


def test_overloaded_at_connect() -> None:
    for d in make_daemon(["--max-connections", "1"]):
        deadline = time.monotonic() + 20
        while True:  # until maosd has closed the fixture's readiness probe
            try:
                c = maos.Client(d.sock)
                break
            except maos.Overloaded:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        with c:
            with pytest.raises(maos.Overloaded) as ei:
                maos.Client(d.sock, reconnect=False)
            assert ei.value.message

            async def second() -> None:
                a = maos.AsyncClient(d.sock, reconnect=False)
                try:
                    await a.connect()
                finally:
                    await a.close()
            with pytest.raises(maos.Overloaded):
                asyncio.run(second())
            c.ping()


def _shim() -> str:
    p = os.environ.get("MAOS_FAULTSHIM")
    if not p or not os.path.exists(p):
        pytest.skip("MAOS_FAULTSHIM (tests/fault/faultshim.so) not built")
    return p


def _preload(binary: str, shim: str) -> str:
    """LD_PRELOAD for the shim; a sanitizer runtime the daemon links must
    come first in it (as tests/fault/fault_util.c fu_preload does)."""
    import subprocess
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return shim
    for line in out.splitlines():
        if any(n in line for n in ("libasan.so", "libtsan.so", "libclang_rt.asan",
                                   "libclang_rt.tsan")) and "=>" in line:
            rt = line.split("=>")[1].split("(")[0].strip()
            if rt:
                return f"{rt}:{shim}"
    return shim


def test_outcome_unknown_then_read_only() -> None:
    """A failing journal fsync: that append gets OUTCOME_UNKNOWN, every
    later write READ_ONLY, reads go on (fault shim of tests/fault)."""
    shim = _shim()
    tmp = tempfile.mkdtemp(prefix="maos-py-fault.")
    d = Daemon(tmp, [])
    env = dict(os.environ, LD_PRELOAD=_preload(d.bin, shim), MAOS_SHIM_DIR=d.data,
               MAOS_SHIM_FAULT="any:sync:1", MAOS_SHIM_STICKY="1", MAOS_SHIM_ARM="signal")
    old = os.environ.copy()
    os.environ.update(env)
    try:
        d.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        with maos.Client(d.sock) as c:
            c.append("ok-1", [{"type": "x"}])
            assert d.proc is not None
            d.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 20
            while "faultshim: armed" not in open(d.log, errors="replace").read():
                assert time.monotonic() < deadline, "the shim was not armed"
                time.sleep(0.01)  # polling the log for a condition, bounded
            with pytest.raises(maos.OutcomeUnknown) as ei:
                c.append("bad-1", [{"type": "x"}])
            assert ei.value.message
            with pytest.raises(maos.ReadOnly):
                c.append("bad-2", [{"type": "x"}])
            with pytest.raises(maos.ReadOnly):
                c.put("kv.a", "k", {})
            assert [e.stream for e in c.read("ok-1")] == ["ok-1"]
            assert c.stats()["state"] == "read_only"
    finally:
        d.kill9()


# ---- a server that misbehaves -------------------------------------------------------

def fake_server(replies: Any) -> Iterator[str]:
    """A Unix socket that answers hello properly, then plays `replies(req)`
    (raw bytes) for each request."""
    tmp = tempfile.mkdtemp(prefix="maos-py-fake.")
    path = os.path.join(tmp, "fake.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(4)
    stop = threading.Event()

    def serve() -> None:
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                s, _ = ls.accept()
            except socket.timeout:
                continue
            with s:
                s.settimeout(20)
                r = _core.FrameReader()
                try:
                    while True:
                        data = s.recv(65536)
                        if not data:
                            break
                        for f in r.feed(data):
                            req = _core.unpack(f)
                            if req["op"] == "hello":
                                out = _core.pack({"rid": req["rid"], "ok": True, "version": 1,
                                                  "server": "fake", "max_frame": 1 << 20})
                                s.sendall(_core.frame(out))
                            else:
                                s.sendall(replies(req))
                except OSError:
                    pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield path
    finally:
        stop.set()
        t.join(5)
        ls.close()


@pytest.mark.parametrize("name,reply", [
    ("missing field", lambda q: _core.frame(_core.pack({"rid": q["rid"], "ok": True}))),
    ("no ok", lambda q: _core.frame(_core.pack({"rid": q["rid"]}))),
    ("unknown rid", lambda q: _core.frame(_core.pack({"rid": q["rid"] + 7, "ok": True}))),
    ("not msgpack", lambda q: _core.frame(b"\xc1")),
    ("not a map", lambda q: _core.frame(_core.pack([1, 2]))),
    ("zero length", lambda q: b"\x00\x00\x00\x00"),
    ("huge length", lambda q: b"\xff\xff\xff\xff"),
    ("bad ids", lambda q: _core.frame(_core.pack({
        "rid": q["rid"], "ok": True, "stream": "s", "first_version": 0, "first_position": 1,
        "count": 2, "duplicate": False, "ids": b"\x01" * 16}))),
    ("bad record", lambda q: _core.frame(_core.pack({
        "rid": q["rid"], "ok": True, "events": [{"position": 1}], "next": None}))),
    ("error without code", lambda q: _core.frame(_core.pack({"rid": q["rid"], "ok": False}))),
])
def test_protocol_violations(name: str, reply: Any) -> None:
    for path in fake_server(reply):
        with maos.Client(path, reconnect=False, timeout=10) as c:
            with pytest.raises(maos.ProtocolViolation):
                if name == "bad record":
                    list(c.read("s"))
                else:
                    c.append("s", [{"type": "x"}, {"type": "y"}])
            with pytest.raises(maos.ConnectionLost):
                c.ping()  # the connection was dropped: its stream is untrusted

        async def main() -> None:
            async with maos.AsyncClient(path, reconnect=False, timeout=10) as a:
                with pytest.raises(maos.ProtocolViolation):
                    if name == "bad record":
                        [e async for e in a.read("s")]
                    else:
                        await a.append("s", [{"type": "x"}, {"type": "y"}])
        asyncio.run(main())


def test_silent_server_times_out() -> None:
    for path in fake_server(lambda q: b""):
        with maos.Client(path, reconnect=False, timeout=0.3) as c:
            with pytest.raises(maos.Timeout):
                c.ping()

        async def main() -> None:
            async with maos.AsyncClient(path, reconnect=False, timeout=0.3) as a:
                with pytest.raises(maos.Timeout):
                    await a.ping()
        asyncio.run(main())


def test_untrusted_directory() -> None:
    tmp = tempfile.mkdtemp(prefix="maos-py-trust.")
    os.chmod(tmp, 0o777)  # writable by others, not sticky
    with pytest.raises(maos.UntrustedServer):
        maos.Client(os.path.join(tmp, "maosd.sock"))
    link = tmp + ".link"
    os.chmod(tmp, 0o700)
    os.symlink(tmp, link)
    with pytest.raises(maos.UntrustedServer):
        maos.Client(os.path.join(link, "maosd.sock"))
    with pytest.raises(maos.ConnectionLost):
        maos.Client(os.path.join(tmp, "absent.sock"), reconnect=False)


# ---- SHUTTING_DOWN, CORRUPT, INTERNAL ------------------------------------------------

def _wait_for(cond: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # polling for a condition, bounded by the deadline


def hold_commit(sock: str, gate: str) -> socket.socket:
    """maosd-fault started with MAOS_FAULT_STALL_GATE=gate: make the gate
    and send an append (rid 2) on a raw connection of its own, so the
    commit thread holds that group in its write until the gate is removed.
    Returns once the append is held (a ping sent after it was answered:
    the append was dispatched before it); its reply comes on the returned
    socket when the gate opens."""
    held = raw(sock)
    send(held, {"op": "hello", "rid": 1, "version": 1})
    assert recv(held)["ok"] is True
    open(gate, "w").close()
    send(held, {"op": "append", "rid": 2, "stream": "held-1", "expect": "any",
                "events": [{"type": "x"}]})
    send(held, {"op": "ping", "rid": 3})
    assert recv(held)["rid"] == 3
    return held


def test_shutting_down() -> None:
    """maosd-fault with MAOS_FAULT_STALL_GATE: while the gate file exists the
    commit thread holds its group inside the write.  An append is sent and
    held there; SIGTERM then starts the drain, which waits for that commit,
    so the daemon still reads requests but refuses every write with
    SHUTTING_DOWN (dispatch.c's storage gate) -- through maos.Client and
    maos.AsyncClient alike, reads still served.  Opening the gate lets the
    held append be acknowledged and maosd exit 0."""
    tmp = tempfile.mkdtemp(prefix="maos-py-shut.")
    gate = os.path.join(tmp, "stall-gate")
    d = Daemon(tmp, [], bin_var="MAOSD_FAULT_BIN", env={"MAOS_FAULT_STALL_GATE": gate})
    d.start()
    try:
        async def main() -> None:
            c = maos.Client(d.sock, reconnect=False)
            a = maos.AsyncClient(d.sock, reconnect=False)
            await a.connect()
            c.append("before-1", [{"type": "x"}])
            held = hold_commit(d.sock, gate)
            assert d.proc is not None
            d.proc.send_signal(signal.SIGTERM)
            # maosd_server_stop sets `stopping` and unlinks the socket in the
            # same loop callback: once the path is gone, writes are refused
            _wait_for(lambda: not os.path.exists(d.sock), "the socket was not unlinked")
            with pytest.raises(maos.ShuttingDown) as ei:
                c.append("after-1", [{"type": "x"}])
            assert ei.value.code == "SHUTTING_DOWN" and ei.value.message
            with pytest.raises(maos.ShuttingDown):
                c.put("kv.a", "k", {"v": 1})
            with pytest.raises(maos.ShuttingDown) as ai:
                await a.append("after-2", [{"type": "x"}])
            assert ai.value.code == "SHUTTING_DOWN" and ai.value.message
            assert [e.stream for e in c.read("before-1")] == ["before-1"]
            os.unlink(gate)
            rep = recv(held)
            assert rep["rid"] == 2 and rep["ok"] is True, rep
            held.close()
            c.close()
            await a.close()
        asyncio.run(main())
        assert d.proc is not None
        assert d.proc.wait(timeout=30) == 0
        d.proc = None
    finally:
        if os.path.exists(gate):
            os.unlink(gate)
        if d.proc is not None:
            d.kill9()


def test_claim_wait_stretches_the_request_timeout(sock: str) -> None:
    """A claim's wait_ms adds to the request timeout (as in the C client):
    a wait four times the timeout returns [] when it ends, not Timeout
    with the connection dropped (both clients did that)."""
    with maos.Client(sock, timeout=0.3) as c:
        assert c.claim("empty-q", wait_ms=1200) == []
        c.ping()

    async def main() -> None:
        async with maos.AsyncClient(sock, timeout=0.3) as a:
            assert await a.claim("empty-q", wait_ms=1200) == []
            await a.ping()
    asyncio.run(main())


def test_long_calls_outlast_the_request_timeout() -> None:
    """backup (and compact, the same code) answer when maosd's work is done:
    the client's request timeout (0.3 s here) does not end that wait, as it
    ends any other request's, and does not drop the connection under other
    requests; the call's own timeout= does (Timeout, the connection kept).
    The backups are queued behind an append that maosd-fault holds in its
    write (MAOS_FAULT_STALL_GATE) until they have waited five times the
    request timeout; both Client and AsyncClient timed out before.  Also:
    an AsyncClient.lock cancelled while its put is held is let go once
    maosd takes it."""
    tmp = tempfile.mkdtemp(prefix="maos-py-long.")
    gate = os.path.join(tmp, "stall-gate")
    d = Daemon(tmp, [], bin_var="MAOSD_FAULT_BIN", env={"MAOS_FAULT_STALL_GATE": gate})
    d.start()
    try:
        held = hold_commit(d.sock, gate)
        got: dict[str, Any] = {}

        def sync_backup() -> None:
            try:
                with maos.Client(d.sock, reconnect=False, timeout=0.3) as c:
                    got["sync"] = c.backup(os.path.join(tmp, "copy-sync"))
            except BaseException as e:  # reported below
                got["sync"] = e
        th = threading.Thread(target=sync_backup)
        th.start()

        async def main() -> None:
            async with maos.AsyncClient(d.sock, reconnect=False, timeout=0.3) as a, \
                    maos.AsyncClient(d.sock, reconnect=False, timeout=0.3) as b:
                t0 = time.monotonic()
                long = asyncio.ensure_future(a.backup(os.path.join(tmp, "copy-async")))
                quiet = asyncio.ensure_future(b.backup(os.path.join(tmp, "copy-quiet")))
                while time.monotonic() - t0 < 1.5:  # five request timeouts
                    await a.ping()  # other requests go on beside it (on a)
                    await asyncio.sleep(0.05)  # pacing the pings, not a wait for an outcome
                # b had nothing but its backup in flight all along
                assert not long.done() and not quiet.done() and "sync" not in got
                with pytest.raises(maos.Timeout):  # its own bound
                    await a.backup(os.path.join(tmp, "copy-bounded"), timeout=0.2)
                await a.ping()  # the connection was kept
                # a lock whose caller gives up while its put is held: taken
                # when the gate opens, then let go (it stayed held by a's
                # connection, which lives on)
                lk = asyncio.ensure_future(a.lock("late-1"))
                await asyncio.sleep(0)  # the put is queued, then written
                await a.ping()  # maosd has read it: held behind the gate
                lk.cancel()
                os.unlink(gate)
                assert await long >= 1 and await quiet >= 1
                with pytest.raises(asyncio.CancelledError):
                    await lk
                deadline = time.monotonic() + 20
                while True:  # its delete commits after the put's reply
                    try:
                        await b.get("locks", "late-1")
                    except maos.NotFound:
                        break
                    assert time.monotonic() < deadline, "the lock taken late is still held"
                    await asyncio.sleep(0.01)  # polling a state, bounded by the deadline
                assert await b.lock("late-1") > 0
        asyncio.run(main())
        th.join(60)
        assert isinstance(got["sync"], int) and got["sync"] >= 1, got
        rep = recv(held)
        assert rep["rid"] == 2 and rep["ok"] is True, rep
        held.close()
    finally:
        if os.path.exists(gate):
            os.unlink(gate)
        d.stop()


def test_corrupt() -> None:
    """A store in table files (appends, then a clean stop, which flushes)
    with one byte of the largest table file (the events) flipped, as
    tests/stress/test_damage.c does: maosd starts, maosctl verify names the
    first position that cannot be read, and read_all -- sync and async --
    returns every event before it, then raises maos.Corrupt; the
    connection and maosd stay usable."""
    for d in make_daemon():
        with maos.Client(d.sock) as c:
            for b in range(13):
                n = 100 if b < 12 else 1
                stream = f"s{b}" if b < 12 else "s999"
                for _ in range(1 if b < 12 else 50):
                    c.append(stream, [{"type": "t", "data": f"event {i:04d} of append "
                                                            f"{b:04d} padding...."}
                                      for i in range(n)])
        total = 12 * 100 + 50
        d.stop()
        ssts = [os.path.join(d.data, f) for f in os.listdir(d.data) if f.endswith(".sst")]
        assert ssts, "no table file after a clean stop"
        sst = max(ssts, key=os.path.getsize)
        with open(sst, "r+b") as f:
            at = os.path.getsize(sst) // 3
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0xFF]))
        d.start()
        ctl = subprocess.run([_bin_env("MAOSCTL_BIN"), "--socket", d.sock, "verify"],
                             capture_output=True, text=True, timeout=120)
        assert ctl.returncode == 1, ctl.stdout + ctl.stderr
        m = re.search(r"BAD: position (\d+)", ctl.stdout)
        assert m, ctl.stdout
        bad = int(m.group(1))
        assert 1 < bad <= total
        with maos.Client(d.sock) as c:
            got = 0
            with pytest.raises(maos.Corrupt) as ei:
                for ev in c.read_all(page_size=1000):
                    got += 1
                    assert ev.position == got
            assert got == bad - 1
            assert ei.value.code == "CORRUPT" and ei.value.message
            c.ping()  # the refusal leaves the connection usable

        async def main() -> int:
            async with maos.AsyncClient(d.sock) as a:
                n = 0
                with pytest.raises(maos.Corrupt):
                    async for _ in a.read_all(page_size=1000):
                        n += 1
                await a.ping()
                return n
        assert asyncio.run(main()) == bad - 1
        assert d.proc is not None and d.proc.poll() is None


def _bin_env(var: str) -> str:
    p = os.environ.get(var)
    if not p or not os.access(p, os.X_OK):
        pytest.skip(f"{var} is not set to an executable (run through meson test)")
    return p


def test_internal_from_the_wire() -> None:
    """INTERNAL cannot be provoked in a real maosd, so a fake server sends it.

    Every place maosd answers INTERNAL (grep MAOS_EINTERNAL daemon/) is
    out of a test's reach: an unknown write kind (the decoder admits none),
    a bound write of maosd's own (never a client's), a commit thread that
    cannot be created (start-up, before any client), a group whose staging
    or final batch ran out of memory (the commit thread's allocations;
    maosd-failmalloc fails only the loop thread's), a journal record that
    does not fit after a new lap (an invariant), a reader job libuv refuses
    to queue (only while the loop closes), and a read that meets a RocksDB
    status other than "IO error", "Corruption" or busy/try-again, or a key
    the store promised (the fault shim fails writes, syncs and renames, not
    reads; damage is reported as CORRUPT).  So this checks the client's
    side on a real socket: the frame decodes to maos.Internal with code,
    number and message, sync and async, and the connection stays usable."""
    def reply(q: dict[Any, Any]) -> bytes:
        if q["op"] == "ping":
            return _core.frame(_core.pack({"rid": q["rid"], "ok": True}))
        return _core.frame(_core.pack({"rid": q["rid"], "ok": False, "code": "INTERNAL",
                                       "message": "storage failure while reading"}))
    for path in fake_server(reply):
        with maos.Client(path, reconnect=False, timeout=10) as c:
            with pytest.raises(maos.Internal) as ei:
                list(c.read("s-1"))
            assert ei.value.code == "INTERNAL" and ei.value.number == 18
            assert ei.value.message == "storage failure while reading"
            c.ping()

        async def main() -> None:
            async with maos.AsyncClient(path, reconnect=False, timeout=10) as a:
                with pytest.raises(maos.Internal):
                    await a.append("s-1", [{"type": "x"}])
                await a.ping()
        asyncio.run(main())
