"""client/python/tests/conftest.py -- a real maosd per test.

The `daemon` fixture starts the maosd of the build ($MAOSD_BIN, set by
meson) on a socket and data directory in a fresh temp directory, waits
(with a deadline, by connecting) until it answers, and stops it by pid at
the end (SIGTERM, then SIGKILL after a deadline).  `daemon.kill9()` and
`daemon.start()` restart it on the same directory for crash tests.
Also: MAOSCTL_BIN, MAOSD_FAULT_BIN (maosd-fault, the daemon built with
its MAOS_FAULT_* hooks), MAOS_INTEROP_BIN (tests/python/interop.c) and
MAOS_VECTORS_DIR (proto/vectors) from the environment.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Mapping, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # import maos from the tree


def _bin(var: str) -> str:
    p = os.environ.get(var)
    if not p or not os.access(p, os.X_OK):
        pytest.skip(f"{var} is not set to an executable (run through meson test)")
    return p


class Daemon:
    """bin_var: the environment variable naming the binary; env: more
    environment for the daemon (fault hooks)."""

    def __init__(self, tmp: str, extra: list[str], bin_var: str = "MAOSD_BIN",
                 env: Optional[Mapping[str, str]] = None) -> None:
        self.bin = _bin(bin_var)
        self.env = dict(os.environ, **env) if env else None
        self.dir = tmp
        self.sock = os.path.join(tmp, "maosd.sock")
        self.data = os.path.join(tmp, "data")
        self.extra = extra
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = os.path.join(tmp, "maosd.log")

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.bin, "--data-dir", self.data, "--socket", self.sock, "--journal-mb", "8",
                 "--log-level", "warn", *self.extra],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"maosd exited with {self.proc.returncode}: "
                                   f"{open(self.log).read()[-2000:]}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                return
            except OSError:
                time.sleep(0.02)  # polling for a condition, bounded by the deadline
            finally:
                s.close()
        raise RuntimeError("maosd did not come up within the deadline")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.proc = None


def make_daemon(extra: Optional[list[str]] = None) -> Iterator[Daemon]:
    tmp = tempfile.mkdtemp(prefix="maos-py.")
    d = Daemon(tmp, extra or [])
    try:
        d.start()
        yield d
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    yield from make_daemon()


@pytest.fixture
def sock(daemon: Daemon) -> str:
    return daemon.sock


@pytest.fixture
def maosctl() -> str:
    return _bin("MAOSCTL_BIN")
