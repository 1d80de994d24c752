#!/usr/bin/env python3
"""A queue worker: claim, do the work, ack or nack.

Claims wait in maosd (no polling) until a task is ready.  A claim is bound
to the connection when the worker registered an agent, so if this process
dies its tasks go back to the queue at once; otherwise the lease runs out.
A long task extends its lease.  A failure is nacked with the error: the task
is retried (after retry_after_ms) until max_attempts, then dead-lettered
(`dead_list` / `dead_retry`).  The token of each claim is a fencing token
for anything the work writes elsewhere.

    python3 queue_worker.py [--socket PATH] [--queue jobs] [--max N] [--enqueue K]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maos  # noqa: E402


def work(task: maos.Task) -> object:
    data = task.data if isinstance(task.data, dict) else {}
    if data.get("fail"):
        raise ValueError(f"cannot do {data!r}")
    return {"squared": int(data.get("n", 0)) ** 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=None)
    ap.add_argument("--queue", default="jobs")
    ap.add_argument("--worker", default=f"worker-{os.getpid()}")
    ap.add_argument("--max", type=int, default=0, help="stop after N tasks (0: never)")
    ap.add_argument("--enqueue", type=int, default=0, help="first enqueue K demo tasks")
    ap.add_argument("--wait-ms", type=int, default=30000)
    args = ap.parse_args()

    done = 0
    with maos.Client(args.socket) as c:
        if args.enqueue:
            c.enqueue(args.queue, [{"data": {"n": i, "fail": i % 5 == 4}, "max_attempts": 2}
                                   for i in range(args.enqueue)])
        c.agent_register(args.worker, kind="worker")   # binds this worker's claims
        while not args.max or done < args.max:
            tasks = c.claim(args.queue, wait_ms=args.wait_ms, lease_ms=60000)
            if not tasks:
                continue  # nothing within wait_ms: claim again
            t = tasks[0]
            c.agent_status("working", {"task": str(t.id)})
            try:
                result = work(t)
            except Exception as e:
                st = c.nack(t, error=str(e), retry_after_ms=100)
                print(f"{t.id} attempt {t.attempt} failed: {e} -> {st.state}", flush=True)
            else:
                c.ack(t, result=result)
                print(f"{t.id} done: {result} (token {t.token})", flush=True)
            done += 1
            c.agent_status("idle")


if __name__ == "__main__":
    main()
