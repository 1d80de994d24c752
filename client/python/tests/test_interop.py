"""Interop with the C client: the same events, the same bytes.

- events written by libmaos-client (tests/python/interop.c, data and meta
  packed by msgpack-c) are read by the Python client with the same id,
  type, version and values, and re-packing data/meta in Python gives the
  exact stored bytes;
- events written by the Python client are dumped by the C client: the
  stored data/meta bytes are exactly what Python packed;
- maosctl (JSON in) and the Python client agree both ways.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import msgpack
import pytest

import maos
from maos import _core


def interop_bin() -> str:
    p = os.environ.get("MAOS_INTEROP_BIN")
    if not p or not os.access(p, os.X_OK):
        pytest.skip("MAOS_INTEROP_BIN (tests/python/interop) is not built")
    return p


def c_dump(sock: str, stream: str) -> list[tuple[int, int, str, uuid.UUID, bytes, bytes]]:
    out = subprocess.run([interop_bin(), "dump", sock, stream], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        v, p, t, i, d, m = line.split(" ")
        rows.append((int(v), int(p), t, uuid.UUID(hex=i),
                     b"" if d == "-" else bytes.fromhex(d), bytes.fromhex(m)))
    return rows


def test_c_writes_python_reads(sock: str) -> None:
    subprocess.run([interop_bin(), "write", sock, "interop-c"], check=True, timeout=60)
    rows = c_dump(sock, "interop-c")
    assert len(rows) == 4
    with maos.Client(sock) as c:
        evs = list(c.read("interop-c"))
    assert len(evs) == len(rows)
    for ev, (v, p, t, i, d, m) in zip(evs, rows):
        assert (ev.version, ev.position, ev.type, ev.id) == (v, p, t, i)
        assert _core.pack(ev.data) == d, f"{t}: data bytes differ"
        assert _core.pack(ev.meta) == m, f"{t}: meta bytes differ"
        assert ev.data == msgpack.unpackb(d, raw=False)
    scal = evs[0].data
    assert scal["u64"] == 18000000000000000000 and scal["i64"] == -9000000000000000000
    assert scal["f"] == 3.25 and scal["bin"] == b"\x00\x01\xff" and scal["n"] is None
    assert evs[0].meta == {"agent": "c-writer", "correlation": "corr-1"}
    assert evs[2].data[0] == "h\u00e9llo \u2713" and len(evs[2].data[2]) == 299
    assert evs[3].data is None and evs[3].meta == {}


def test_python_writes_c_reads(sock: str) -> None:
    sent = [
        {"type": "py.scalars", "id": uuid.uuid4(),
         "data": {"u64": 2**64 - 1, "i": -2**63, "f": 0.1, "b": b"\x00" * 40, "t": False},
         "meta": {"agent": "py", "n": [1, 2, {"x": None}]}},
        {"type": "py.text", "data": ["é✓", "z" * 70000]},
        {"type": "py.bare"},
    ]
    with maos.Client(sock) as c:
        r = c.append("interop-py", sent)
        evs = list(c.read("interop-py"))
    rows = c_dump(sock, "interop-py")
    assert len(rows) == 3
    for s, ev, (v, p, t, i, d, m) in zip(sent, evs, rows):
        assert (ev.version, ev.position, ev.type, ev.id) == (v, p, t, i)
        assert i in r.ids
        want_d = _core.pack(s["data"]) if "data" in s else b"\xc0"
        want_m = _core.pack(s.get("meta", {}))
        assert d == want_d and m == want_m, f"{t}: stored bytes differ from what Python sent"
    assert rows[0][3] == sent[0]["id"]


def test_maosctl_both_ways(sock: str, maosctl: str) -> None:
    subprocess.run([maosctl, "--socket", sock, "append", "ctl-1", "made",
                    '{"title":"x","n":3,"l":[1,true,null],"f":1.5}', "--meta",
                    '{"agent":"ctl"}', "--id", "0190f0f0-0000-7000-8000-000000000001"],
                   check=True, capture_output=True, timeout=60)
    with maos.Client(sock) as c:
        (ev,) = list(c.read("ctl-1"))
        assert ev.type == "made" and ev.meta == {"agent": "ctl"}
        assert ev.data == {"title": "x", "n": 3, "l": [1, True, None], "f": 1.5}
        assert ev.id == uuid.UUID("0190f0f0-0000-7000-8000-000000000001")
        c.append("ctl-1", [{"type": "py", "data": {"k": ["v", 2]}, "meta": {"m": 1}}])
    out = subprocess.run([maosctl, "--socket", sock, "--json", "read", "ctl-1"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    assert rows[1]["type"] == "py" and rows[1]["data"] == {"k": ["v", 2]}
    assert rows[1]["meta"] == {"m": 1} and rows[1]["version"] == 1
    assert rows[0]["id"] == "0190f0f0-0000-7000-8000-000000000001"
