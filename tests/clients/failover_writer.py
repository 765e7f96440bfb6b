"""redis-py Sentinel writer through an unplanned failover.

Driven by tests/it/failover.rs. Writes (INCR) to the master redis-py's
`Sentinel` resolves, through several sentinel ports, in a loop. Prints
`READY` once a write succeeded on the initial master; then keeps writing,
tolerating errors (the master dies), until writes succeed again on another
address: prints `SWITCHED <host>:<port> <n>` after a few successful writes
there and exits 0. Exits 1 (with a FAIL line) if that does not happen before
the deadline. Every socket call is bounded by a timeout.
"""

import argparse
import sys
import time

import redis
from redis.sentinel import Sentinel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinel-ports", required=True, help="p1,p2,p3")
    ap.add_argument("--master-name", default="mymaster")
    ap.add_argument("--initial-master", required=True, help="host:port")
    ap.add_argument("--key", default="raftinel-failover")
    ap.add_argument("--deadline", type=float, default=90.0, help="seconds")
    ap.add_argument("--writes-after-switch", type=int, default=20)
    args = ap.parse_args()

    print(f"redis-py {redis.__version__}", flush=True)
    opts = {"socket_timeout": 1, "socket_connect_timeout": 1}
    sentinels = [("127.0.0.1", int(p)) for p in args.sentinel_ports.split(",")]
    sentinel = Sentinel(sentinels, sentinel_kwargs=dict(opts), **opts)
    master = sentinel.master_for(args.master_name, **opts)
    pool = master.connection_pool

    initial = args.initial_master
    deadline = time.monotonic() + args.deadline
    ready = False
    errors = 0
    after = 0
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = master.incr(args.key)
            host, port = pool.get_master_address()
            where = f"{host}:{port}"
        except (redis.exceptions.RedisError, OSError) as e:
            errors += 1
            if last_error != type(e).__name__:
                last_error = type(e).__name__
                print(f"error {last_error}: {e}", flush=True)
            time.sleep(0.05)
            continue
        if where == initial:
            if not ready:
                print(f"READY {where} {value}", flush=True)
                ready = True
        elif ready:
            after += 1
            if after >= args.writes_after_switch:
                print(f"SWITCHED {where} {after} (errors during the switch: {errors})", flush=True)
                return 0
        time.sleep(0.01)
    print(f"FAIL: no {args.writes_after_switch} writes on a new master before the deadline "
          f"(ready={ready}, after={after}, errors={errors})", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
