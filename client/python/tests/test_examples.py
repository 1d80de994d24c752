"""The examples in client/python/examples run against a real maosd and do
what their docstrings say (bounded runs)."""
from __future__ import annotations

import os
import subprocess
import sys

import maos
from conftest import Daemon

EX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def ex(*args: str) -> str:
    r = subprocess.run([sys.executable, os.path.join(EX, args[0]), *args[1:]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_agent_recorder(daemon: Daemon) -> None:
    out = ex("agent_recorder.py", "--socket", daemon.sock, "--id", "w-1", "--steps", "3")
    assert out.count("step_done") == 3 and "agent w-1" in out
    with maos.Client(daemon.sock) as c:
        assert c.count("sessions", where={"state": "closed"}) == 1
        assert c.get("agents", "w-1").data["status"] in ("idle", "working", "offline")


def test_resume_subscriber(daemon: Daemon) -> None:
    with maos.Client(daemon.sock) as c:
        c.append_batch([(f"task-{i % 3}", [{"type": "t", "data": i}]) for i in range(10)])
        c.append("job-1", [{"type": "other"}])
    first = ex("resume_subscriber.py", "--socket", daemon.sock, "--max", "4", "--every", "2")
    assert "resuming indexer from start" in first
    second = ex("resume_subscriber.py", "--socket", daemon.sock, "--max", "6", "--txn")
    lines = [ln for ln in first.splitlines() + second.splitlines() if ln[0].isdigit()]
    positions = [int(ln.split()[0]) for ln in lines]
    assert positions == list(range(1, 11)), "resumed after the checkpoint: no gap, no repeat"
    with maos.Client(daemon.sock) as c:
        assert c.checkpoint_get("indexer") == 10 and c.count("kv.index") == 3


def test_queue_worker(daemon: Daemon) -> None:
    out = ex("queue_worker.py", "--socket", daemon.sock, "--enqueue", "5", "--max", "6",
             "--wait-ms", "5000")
    assert out.count("done:") == 4 and out.count("failed") == 2
    with maos.Client(daemon.sock) as c:
        q = c.queue_stats("jobs")[0]
        assert (q.done, q.dead) == (4, 1)


def test_bench_runs(daemon: Daemon) -> None:
    """bench.py works (a tiny run; its figures are a report, not checked)."""
    out = ex(os.path.join("..", "bench.py"), "--socket", daemon.sock, "-n", "50", "--window", "8")
    assert "replay_events" in out and "pipelined" in out
