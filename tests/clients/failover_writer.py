"""redis-py Sentinel writer and reader through failovers.

Driven by tests/it/clients_failover.rs, which causes the failovers and reads
this script's log to decide when the client has followed. The script only
records what redis-py did; every judgement is made by the Rust test.

It resolves the master with redis-py's `Sentinel` (`master_for`, whose pool
asks `SENTINEL MASTERS` on every new connection), writes in a loop, reads
through `slave_for` every few writes (on a new connection each time, so
`SENTINEL SLAVES` is asked each time) and asks `discover_master` for its view,
until the file `<out>/stop` appears or the deadline passes. Every socket call
is bounded by a timeout. Lines appended to `<out>/log` (flushed one by one):

    START redis-py <version> RESP<n>
    W <seq> <port>           RPUSH <key> <seq> acknowledged; <port> is the
                             server's own `port` read in the same MULTI/EXEC
    V <host>:<port>          discover_master's answer, when it changes
    R <port> <role> <last>   a slave_for read: MULTI LINDEX <key> -1,
                             CONFIG GET port, ROLE, EXEC (<last> or -)
    E <what> <error>         an error, when it differs from the previous one
    END writes=<n> errors=<n>

Exit status: 0 when stopped by the test, 3 at the deadline.
"""

import argparse
import os
import sys
import time

import redis
from redis.sentinel import Sentinel


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.last_error = None

    def line(self, text):
        self.f.write(text + "\n")
        self.f.flush()

    def error(self, what, e):
        text = f"{what} {type(e).__name__}: {e}".replace("\n", " ")
        if text != self.last_error:
            self.last_error = text
            self.line(f"E {text}")


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def port_of(config_reply):
    # CONFIG GET port: a dict (redis-py's callback, RESP2 and RESP3).
    if isinstance(config_reply, dict):
        for k, v in config_reply.items():
            if text(k) == "port":
                return text(v)
    return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinel-ports", required=True, help="p1,p2,p3")
    ap.add_argument("--master-name", default="mymaster")
    ap.add_argument("--protocol", type=int, choices=(2, 3), default=3)
    ap.add_argument("--key", default="raftinel-failover")
    ap.add_argument("--out", required=True, help="directory for log and stop")
    ap.add_argument("--deadline", type=float, default=240.0, help="seconds")
    ap.add_argument("--read-every", type=int, default=10)
    args = ap.parse_args()

    log = Log(os.path.join(args.out, "log"))
    stop = os.path.join(args.out, "stop")
    log.line(f"START redis-py {redis.__version__} RESP{args.protocol}")

    opts = {
        "socket_timeout": 1,
        "socket_connect_timeout": 1,
        "protocol": args.protocol,
    }
    sentinels = [("127.0.0.1", int(p)) for p in args.sentinel_ports.split(",")]
    sentinel = Sentinel(sentinels, sentinel_kwargs=dict(opts), **opts)
    master = sentinel.master_for(args.master_name, decode_responses=True, **opts)
    replica = sentinel.slave_for(args.master_name, decode_responses=True, **opts)

    deadline = time.monotonic() + args.deadline
    seq = 0
    writes = 0
    errors = 0
    view = None
    i = 0
    while not os.path.exists(stop):
        if time.monotonic() > deadline:
            log.line(f"END deadline writes={writes} errors={errors}")
            return 3
        i += 1
        # Each attempt gets a new value: a write whose reply was lost may
        # still have been applied, and must not be confused with a later one.
        seq += 1
        try:
            pipe = master.pipeline(transaction=True)
            pipe.rpush(args.key, seq)
            pipe.config_get("port")
            _, cfg = pipe.execute()
            log.line(f"W {seq} {port_of(cfg)}")
            writes += 1
            ok = True
        except (redis.exceptions.RedisError, OSError) as e:
            errors += 1
            log.error("write", e)
            ok = False
        if not ok or i % args.read_every == 0:
            try:
                host, port = sentinel.discover_master(args.master_name)
                now = f"{host}:{port}"
                if now != view:
                    view = now
                    log.line(f"V {now}")
            except (redis.exceptions.RedisError, OSError) as e:
                log.error("discover_master", e)
        if i % args.read_every == 0:
            try:
                # redis-py keeps a replica connection across failovers and
                # never checks its role, so one opened to the replica that
                # was then promoted keeps reading from the master: each read
                # gets a new connection, i.e. slave_for's discovery
                # (SENTINEL SLAVES) runs every time.
                replica.connection_pool.disconnect()
                pipe = replica.pipeline(transaction=True)
                pipe.lindex(args.key, -1)
                pipe.config_get("port")
                pipe.execute_command("ROLE")
                last, cfg, role = pipe.execute()
                log.line(f"R {port_of(cfg)} {text(role[0])} {last if last is not None else '-'}")
            except (redis.exceptions.RedisError, OSError) as e:
                log.error("read", e)
        time.sleep(0.05 if not ok else 0.005)
    log.line(f"END writes={writes} errors={errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
