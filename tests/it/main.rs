//! All integration tests, in one test target (one link step).
//!
//! They start real `redis-server`/`redis-sentinel` processes and the daemon on
//! loopback, each in its own temp dir with its logs there; a failing test
//! prints the daemon's log tail and config. Environment:
//! - `RAFTINEL_PYTHON`: a python with `redis==8.1.0` (`.ci/run` makes a venv);
//!   without it the redis-py tests print a skip line, or fail when `CI` is set.
//! - `RAFTINEL_IT_BIN=/usr/bin/redis-sentinel`: run the suite against the
//!   reference implementation instead of the daemon, to check the tests
//!   themselves. Expected to fail there: the exit-status-64 tests, the
//!   read-only config test and the hostile tests of the input and unread-reply
//!   limits (raftinel deliberately differs), the tests of a Raft group, and
//!   `failfast`.
//! - `prometheus-redis-exporter` on PATH for `exporter` and `deploy` (Debian
//!   package; `.ci/deps` installs it): without it those tests print a skip
//!   line, or fail when `CI` is set.
//! - `deploy` also needs kubectl, kubernetes-validate and promtool (see its
//!   module comment); the same rule applies.
//!
//! Modules: `monitoring` (discovery, SDOWN/ODOWN, events), `config`
//! (persistence, rewrite, bad files, logfile), `differential` (replies and
//! events side by side with redis-sentinel 7.0.15), `hostnames` (the same
//! with `localhost` as the master's name, announced or not), `clients` (redis-py,
//! redis-cli), `clients_failover` (redis-py, ioredis, redis-cli and the
//! scripts through real failovers), `clients_rust` (redis-rs and fred through
//! failovers), `clients_jvm` (Jedis and Lettuce, as Spring opens them, through
//! every kind of failover; needs java, javac and `../shared/clients/jvm`),
//! `failover`, `exporter` (Prometheus redis_exporter's series
//! against raftinel and redis-sentinel), `deploy` (the Kubernetes manifests
//! rendered, validated and checked against the daemon), `replay` (Jedis and Lettuce command
//! sequences over raw RESP through failovers), `hostile` (bad input: bounded
//! memory, the daemon keeps serving everyone else), `trust` (who may send Raft
//! RPCs: ACL user, group secret, replays; quiet logs with failing peers),
//! `raft` (group formation and refusals), `membership` (identity and
//! membership through restarts, moves, wiped data, removals and a scaled
//! peer list), `failfast` (a panicking task or a stopped Raft core stops the
//! daemon, through the debug build's failpoints), `netsafe` (data safety:
//! partitions, crashes and cold starts of pods in network namespaces,
//! raftinel beside redis-sentinel; needs root), `fuzz` (seeded mutational
//! fuzzing of the parsers and of RAFTINEL requests to a live daemon),
//! `rehearsal` (the rendered StatefulSet run pod by pod in network
//! namespaces, as a kubelet would, through deletions, a new IP, a wiped
//! volume, a cold start, a rolling restart and scaling; needs root), `tls`
//! (the TLS port beside redis-sentinel with the same certificates: redis-cli,
//! redis-py, s_client; bad certificates and keys at load), `unixsocket`
//! (the Unix socket listener beside redis-sentinel).

// The integration tests drive real processes in real time from plain threads
// (no tokio runtime to pause): wall-clock deadlines and poll sleeps are the
// point here, so the daemon's one-clock lint does not apply.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod harness;

mod clients;
mod clients_failover;
mod clients_jvm;
mod clients_rust;
mod config;
mod deploy;
mod differential;
mod exporter;
mod failfast;
mod failover;
mod fuzz;
mod hostile;
mod hostnames;
#[cfg(feature = "k8s")]
mod k8s;
mod k8s_fake;
mod membership;
mod monitoring;
mod netsafe;
mod raft;
mod rehearsal;
mod replay;
mod tls;
mod trust;
mod unixsocket;
