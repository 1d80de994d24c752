"""A writer process for the gap-free and resume tests.

    _writer.py SOCK SEED N   append N events to task-0..9 / job-0..4 in
                             appends of 1..8 events and txns over 2..3
                             streams, every event with an id; a lost
                             connection re-sends the same request (the ids
                             make it idempotent), so after a kill -9 of
                             maosd nothing is lost and nothing doubled.
Prints "done N" at the end."""
from __future__ import annotations

import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import maos  # noqa: E402

STREAMS = [f"task-{i}" for i in range(10)] + [f"job-{i}" for i in range(5)]
TYPES = ["created", "updated", "done"]


def events(rng: random.Random, n: int, w: int) -> list[dict[str, object]]:
    return [{"type": rng.choice(TYPES), "id": uuid.UUID(int=rng.getrandbits(128)),
             "data": {"w": w, "r": rng.randrange(1 << 30)}} for _ in range(n)]


def main() -> None:
    sock, seed, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    left = total
    for attempt in range(600):  # the first connect is not retried by the client
        try:
            c = maos.Client(sock, reconnect=True, reconnect_max=60, timeout=30)
            break
        except maos.ConnectionLost:
            time.sleep(0.05)  # maosd is restarting in the resume test
    else:
        raise SystemExit("could not connect")
    with c:
        while left > 0:
            if rng.random() < 0.25 and left >= 3:
                k = rng.randint(2, 3)
                ss = rng.sample(STREAMS, k)
                appends = [{"stream": s, "events": events(rng, 1, seed)} for s in ss]
                n = k
                f = lambda: c.txn(appends)  # noqa: E731
            else:
                n = min(left, rng.randint(1, 8))
                s, evs = rng.choice(STREAMS), events(rng, n, seed)
                f = lambda: c.append(s, evs)  # noqa: E731
            for attempt in range(100):
                try:
                    f()
                    break
                except maos.ConnectionLost:
                    continue  # re-send: the ids make it idempotent
            else:
                raise SystemExit("could not write after 100 attempts")
            left -= n
    print("done", total, flush=True)


if __name__ == "__main__":
    main()
