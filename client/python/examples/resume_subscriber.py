#!/usr/bin/env python3
"""A subscriber that resumes from a checkpoint.

It follows every event of a category, handles each one, and stores its
position as a named checkpoint in maosd every --every events (and when it
stops), so that a restart of this program -- or of maosd -- goes on after
the last event it handled: nothing skipped.  An event handled after the
last checkpoint is seen again after a crash (at-least-once): make the
handler idempotent, or save the checkpoint in the same txn as the
handler's own writes (shown with --txn).

    python3 resume_subscriber.py [--socket PATH] [--category task]
                                 [--name indexer] [--max N]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maos  # noqa: E402


async def run(args: argparse.Namespace) -> int:
    handled = 0
    async with maos.AsyncClient(args.socket) as a:
        last = await a.checkpoint(args.name)        # None the first time
        start = "start" if last is None else last + 1
        print(f"resuming {args.name} from {start}", flush=True)
        async for ev in a.subscribe(category=args.category, start=start):
            assert isinstance(ev, maos.Event)
            print(f"{ev.position} {ev.stream} v{ev.version} {ev.type}", flush=True)
            handled += 1
            if args.txn:
                # the handler's own write and the checkpoint, all or nothing
                await a.txn(ops=[
                    {"op": "put", "table": "kv.index", "key": ev.stream,
                     "data": {"last_type": ev.type, "version": ev.version}},
                    {"op": "checkpoint", "name": args.name, "position": ev.position}])
            elif handled % args.every == 0:
                await a.checkpoint_save(args.name, ev.position)
            if args.max and handled >= args.max:
                await a.checkpoint_save(args.name, ev.position)
                break
    return handled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=None)
    ap.add_argument("--category", default="task")
    ap.add_argument("--name", default="indexer")
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--max", type=int, default=0, help="stop after N events (0: never)")
    ap.add_argument("--txn", action="store_true")
    args = ap.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
