"""Every error code maosd can send arrives as its own maos.Error subclass
with code and message (provoked for real where a test can provoke it);
the mapping table itself is checked against proto/include/maos/errors.h;
a misbehaving server is a ProtocolViolation, never a crash or a hang."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
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
