"""redis-py Sentinel flows against one sentinel port, in RESP2 or RESP3.

Driven by tests/it/clients.rs. Exits 0 and prints OK lines on success;
on failure prints what differed and exits 1. Every wait is bounded.
"""

import argparse
import sys
import time

import redis
from redis.sentinel import Sentinel


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinel-port", type=int, required=True)
    ap.add_argument("--master-name", default="mymaster")
    ap.add_argument("--protocol", type=int, choices=(2, 3), required=True)
    ap.add_argument("--expect-master", required=True, help="host:port")
    ap.add_argument("--expect-replicas", default="", help="host:port,host:port")
    ap.add_argument("--key", default="raftinel-it")
    args = ap.parse_args()

    print(f"redis-py {redis.__version__}, RESP{args.protocol}", flush=True)
    opts = {"socket_timeout": 5, "socket_connect_timeout": 5, "protocol": args.protocol}
    sentinel = Sentinel(
        [("127.0.0.1", args.sentinel_port)],
        sentinel_kwargs=dict(opts),
        **opts,
    )

    host, port = args.expect_master.rsplit(":", 1)
    got = sentinel.discover_master(args.master_name)
    if got != (host, int(port)):
        fail(f"discover_master returned {got!r}, expected {(host, int(port))!r}")
    print(f"OK discover_master {got}", flush=True)

    if args.expect_replicas:
        want = sorted(
            (h, int(p)) for h, p in (x.rsplit(":", 1) for x in args.expect_replicas.split(","))
        )
        replicas = sorted(sentinel.discover_slaves(args.master_name))
        if replicas != want:
            fail(f"discover_slaves returned {replicas!r}, expected {want!r}")
        print(f"OK discover_slaves {replicas}", flush=True)

    master = sentinel.master_for(args.master_name, **opts)
    value = f"value-{time.time_ns()}"
    if master.set(args.key, value) is not True:
        fail("master_for(...).set did not return True")
    read = master.get(args.key)
    if read not in (value, value.encode()):
        fail(f"master_for(...).get returned {read!r}, expected {value!r}")
    print("OK master_for set/get", flush=True)

    replica = sentinel.slave_for(args.master_name, **opts)
    deadline = time.monotonic() + 20
    while True:
        read = replica.get(args.key)
        if read in (value, value.encode()):
            break
        if time.monotonic() > deadline:
            fail(f"slave_for(...).get returned {read!r} after 20 s, expected {value!r}")
        time.sleep(0.1)
    role = replica.execute_command("ROLE")
    first = role[0].decode() if isinstance(role[0], bytes) else role[0]
    if first != "slave":
        fail(f"slave_for connected to a node with ROLE {role!r}")
    print("OK slave_for get", flush=True)


if __name__ == "__main__":
    main()
