"""client/python/tests/test_tokens.py -- access tokens from Python: a token
given as ``token=`` or through MAOS_TOKEN gives its scopes (a request out of
scope raises Forbidden naming the scope, read_all is filtered to them), and
a token the daemon does not take raises Unauthenticated at connect, never
retried.  Tokens are made with maosctl (the admin's tool)."""
from __future__ import annotations

import subprocess

import pytest

import maos


def make_token(maosctl: str, sock: str, name: str, *scopes: str) -> str:
    args = [maosctl, "--socket", sock, "token", "create", name]
    for s in scopes:
        args += ["--scope", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    assert out.startswith("maos_") and len(out) == 48
    return out


def test_token_scopes(sock: str, maosctl: str) -> None:
    tok = make_token(maosctl, sock, "py", "read:py-", "append:py-")
    with maos.Client(sock) as root:
        root.append("other-1", [{"type": "x"}])
    with maos.Client(sock, token=tok) as c:
        c.append("py-1", [{"type": "x"}])
        with pytest.raises(maos.Forbidden) as ei:
            c.append("other-2", [{"type": "x"}])
        assert "append:other-2" in ei.value.message
        streams = [e.stream for e in c.read_all()]
        assert streams == ["py-1"]
    with maos.Client(sock) as root:  # nothing of the refused append (its
        # refusal and the token's creation are in $audit)
        assert [e.stream for e in root.read_all()
                if e.stream != "$audit"] == ["other-1", "py-1"]


def test_token_from_env(sock: str, maosctl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = make_token(maosctl, sock, "env", "read:e-")
    monkeypatch.setenv("MAOS_TOKEN", tok)
    with maos.Client(sock) as c:
        with pytest.raises(maos.Forbidden):
            c.append("e-1", [{"type": "x"}])
    monkeypatch.setenv("MAOS_TOKEN", "maos_" + "A" * 43)
    with pytest.raises(maos.Unauthenticated):
        maos.Client(sock).ping()


def test_bad_token(sock: str) -> None:
    for bad in ("maos_short", "x" * 48):
        with pytest.raises(maos.Unauthenticated):
            with maos.Client(sock, token=bad, reconnect=True) as c:
                c.ping()


def test_token_ops(sock: str) -> None:
    with maos.Client(sock) as root:
        tok = root.token_create("agent", ["read:t-"], session="s9", expires_ms=3_600_000)
        assert tok.startswith("maos_")
        names = {t["name"]: t for t in root.token_list()}
        assert "read:t-" in names["agent"]["scopes"] and "append:s9-" in names["agent"]["scopes"]
        assert names["agent"]["session"] == "s9" and names["agent"]["expires"] > 0
        with pytest.raises(maos.Conflict):
            root.token_create("agent", ["read:"])
        with pytest.raises(maos.BadRequest):
            root.token_create("bad", ["nope:x"])
        with maos.Client(sock, token=tok) as c:
            c.append("s9-1", [{"type": "x"}])
            with pytest.raises(maos.Forbidden):
                c.token_list()
        assert root.token_revoke("agent") == 0
        with pytest.raises(maos.NotFound):
            root.token_revoke("agent")
        with pytest.raises(maos.Unauthenticated):
            maos.Client(sock, token=tok).ping()
