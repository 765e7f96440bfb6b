// ioredis Sentinel writer through failovers.
//
// Driven by tests/it/clients_failover.rs, which causes the failovers and
// reads this script's log to decide when the client has followed; the script
// only records what ioredis did. ioredis (pinned in package.json, installed by
// .ci/run with `npm ci`, found through NODE_PATH) is given ONE sentinel and
// `failoverDetector: true`: it must learn the other sentinels from
// `SENTINEL SENTINELS` (sent after every get-master-addr-by-name) and its
// detector subscribes to `+switch-master` on each of them.
//
// Lines appended to <out>/log:
//   START ioredis <version> node <version>
//   C <host>:<port>       the data connection is ready (after ioredis's INFO
//                         role check) on this address
//   S <host:port,...>     ioredis's sentinel list, when it changes
//   D <n> <host:port,...> the failover detector subscribed on n sentinels
//   F                     the failover detector saw +switch-master
//   W <seq> <port>        RPUSH <key> <seq> acknowledged; <port> is the
//                         server's own `port` read in the same MULTI/EXEC
//   E <error>             an error, when it differs from the previous one
//   X end                 ioredis ended the connection for good (see below)
//   END writes=<n> errors=<n>
// Exit status: 0 when stopped by the test (file <out>/stop), 3 at the deadline.

"use strict";

const fs = require("fs");
const path = require("path");
const Redis = require("ioredis");
const { FailoverDetector } = require("ioredis/built/connectors/SentinelConnector/FailoverDetector");

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
  return def;
}

const sentinelPort = Number(arg("sentinel-port"));
const name = arg("master-name", "mymaster");
const key = arg("key", "raftinel-ioredis");
const out = arg("out");
const deadlineMs = Number(arg("deadline", "240")) * 1000;
const logFd = fs.openSync(path.join(out, "log"), "a");
const stopFile = path.join(out, "stop");

function log(line) {
  fs.writeSync(logFd, line + "\n");
}
let lastError = null;
function logError(e) {
  const text = String((e && e.message) || e).replace(/\n/g, " ");
  if (text !== lastError) {
    lastError = text;
    log(`E ${text}`);
  }
}

// Record the detector's reaction without changing it.
const detectorDisconnect = FailoverDetector.prototype.disconnect;
FailoverDetector.prototype.disconnect = function () {
  if (!this.isDisconnected) log("F");
  return detectorDisconnect.call(this);
};

log(`START ioredis ${require("ioredis/package.json").version} node ${process.version}`);

const redis = new Redis({
  sentinels: [{ host: "127.0.0.1", port: sentinelPort }],
  name,
  failoverDetector: true,
  connectTimeout: 1000,
  commandTimeout: 2000,
  sentinelCommandTimeout: 2000,
  maxRetriesPerRequest: 1,
  sentinelRetryStrategy: (n) => Math.min(50 * n, 500),
  retryStrategy: (n) => Math.min(50 * n, 500),
});
redis.on("error", logError);
// ioredis 6.0.0 gives up for good ("end", every later command fails with
// "Connection is closed.") when its failover detector disconnects while a
// reconnection through the sentinels is in progress: the connector's
// disconnect makes the pending connect reject, and a rejected connect ends
// the client. That happens when the data connection is killed (the old
// master's clients are killed when it is demoted) just before +switch-master
// arrives. Logged as X, then the script reconnects as an application would
// have to; the test reports it.
let stopping = false;
redis.on("end", () => {
  if (stopping) return;
  log("X end");
  setTimeout(() => redis.connect().catch(() => {}), 100);
});

const addr = (s) => `${s.host || "127.0.0.1"}:${s.port || 26379}`;
let lastSentinels = "";
function noteSentinels() {
  const list = redis.connector.sentinelIterator.sentinels.map(addr).join(",");
  if (list !== lastSentinels) {
    lastSentinels = list;
    log(`S ${list}`);
  }
}
redis.on("ready", () => {
  const s = redis.stream;
  log(`C ${s.remoteAddress}:${s.remotePort}`);
  noteSentinels();
});
redis.on("failoverSubscribed", () => {
  const d = redis.connector.failoverDetector;
  const list = d ? d.sentinels.map((x) => addr(x.address)) : [];
  log(`D ${list.length} ${list.join(",")}`);
  noteSentinels();
});

function portOf(cfg) {
  // CONFIG GET port: a flat array in RESP2, a map (object or Map) in RESP3.
  if (Array.isArray(cfg)) {
    for (let i = 0; i + 1 < cfg.length; i += 2) if (String(cfg[i]) === "port") return String(cfg[i + 1]);
  } else if (cfg instanceof Map) {
    if (cfg.has("port")) return String(cfg.get("port"));
  } else if (cfg && typeof cfg === "object" && "port" in cfg) {
    return String(cfg.port);
  }
  return "?";
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const deadline = Date.now() + deadlineMs;
  let seq = 0;
  let writes = 0;
  let errors = 0;
  while (!fs.existsSync(stopFile)) {
    if (Date.now() > deadline) {
      stopping = true;
      log(`END deadline writes=${writes} errors=${errors}`);
      return 3;
    }
    // A new value per attempt: an unacknowledged write may still land.
    seq += 1;
    let ok = false;
    try {
      const res = await redis.multi().rpush(key, String(seq)).config("GET", "port").exec();
      const bad = (res || []).find(([err]) => err);
      if (!res || bad) throw (bad && bad[0]) || new Error("EXEC returned null");
      log(`W ${seq} ${portOf(res[1][1])}`);
      writes += 1;
      ok = true;
    } catch (e) {
      errors += 1;
      logError(e);
    }
    await sleep(ok ? 5 : 50);
  }
  stopping = true;
  log(`END writes=${writes} errors=${errors}`);
  return 0;
}

main().then(
  (code) => {
    redis.disconnect();
    process.exit(code);
  },
  (e) => {
    log(`E fatal ${e && e.stack}`);
    process.exit(1);
  },
);
