#!/usr/bin/env python3
"""An agent that records what it does in maos.

It registers itself (its entry in `agents` shows it online while it runs,
offline once its connection is gone), opens a session, and appends one
event per step to its own stream `agent_log-<id>`, every event tagged with
the session in meta (maosd stamps meta.agent itself).  Progress ticks go to
a channel for whoever watches live.  Each step's event carries an id made
before the write, so a retry after a lost connection cannot record a step
twice.

    python3 agent_recorder.py [--socket PATH] [--id writer-1] [--steps 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maos  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=None)
    ap.add_argument("--id", default="writer-1")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    session = f"report-{uuid.uuid4().hex[:8]}"
    stream = f"agent_log-{args.id}"
    with maos.Client(args.socket) as c:
        c.agent_register(args.id, session=session, kind="writer", tags=["demo"])
        c.session_open(session, {"goal": "write the report"})
        for step in range(1, args.steps + 1):
            c.agent_status("working", {"step": step})
            event = {"type": "step_done", "id": uuid.uuid4(),
                     "data": {"step": step, "of": args.steps},
                     "meta": {"session": session}}
            for attempt in range(5):
                try:
                    r = c.append(stream, [event])
                    break
                except maos.ConnectionLost:
                    continue  # same id: stored once however often it is sent
            else:
                raise SystemExit("maosd is gone")
            c.publish(f"progress.{args.id}", {"step": step, "position": r.first_position})
        c.session_close(session, result={"steps": args.steps})
        for ev in c.read(stream):
            if ev.meta.get("session") == session:
                print(f"{ev.time:%H:%M:%S} v{ev.version} {ev.type} {ev.data} "
                      f"(agent {ev.meta.get('agent')})")


if __name__ == "__main__":
    main()
