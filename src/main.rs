//! The `raftinel` binary (also run as `redis-sentinel` / `redis-server
//! --sentinel` through a symlink).
//!
//! Startup order matters: parse the command line → load the configuration (a bad one is reported as
//! `<file>:<line>: <reason>` with exit status 64, before any port is bound) →
//! chdir to `dir` → daemonize (fork before any thread exists) → logging →
//! build the core and execute its first actions (including the flush of a
//! freshly generated myid) → bind the listeners → serve, drive, run scripts
//! and the admin listener → on SIGTERM / SIGINT / SHUTDOWN drain and exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rand::RngCore;
use tokio::time::Instant;

use raftinel::cli::{self, Command};
use raftinel::config::{self, Config};
use raftinel::core::{CoreOptions, Sentinel};
use raftinel::observe;
use raftinel::runtime::{self, Daemon, FlushFn};

/// How long the daemon waits for its tasks to finish after a shutdown request.
const DRAIN: Duration = Duration::from_secs(3);

/// Environment variable naming the number of async worker threads (the
/// name tokio reads; read here so that a bad value is refused, not a panic).
const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";
const MAX_WORKER_THREADS: usize = 64;

/// The daemon's async worker threads: one unless `TOKIO_WORKER_THREADS`
/// says otherwise, as redis-sentinel serves everything from one thread. A
/// sidecar shares its pod's cores with Redis and its clients: with one
/// worker per core, the workers woke each other for every batch of requests
/// and fought the clients for the cores (measured on 2 cores, `-P 16`
/// GET-MASTER-ADDR-BY-NAME: 0.77× of redis-sentinel's rate with two
/// workers, 1.01× with one). Blocking work (fsync, config flushes, name
/// resolution) runs on the blocking pool, so the worker is never held by
/// the disk or the resolver.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// The number of worker threads `TOKIO_WORKER_THREADS` (`value`) asks for.
fn worker_threads(value: Option<std::ffi::OsString>) -> Result<usize, String> {
    let Some(value) = value else {
        return Ok(1);
    };
    value
        .to_str()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| (1..=MAX_WORKER_THREADS).contains(n))
        .ok_or_else(|| {
            format!(
                "{WORKER_THREADS_ENV}={}: the number of worker threads must be a whole number from 1 to {MAX_WORKER_THREADS}",
                value.to_string_lossy()
            )
        })
}

fn main() -> ExitCode {
    // One malloc arena for every thread: the daemon is idle most of the
    // time and its few threads allocate little, while each extra arena
    // keeps its own pages resident (about 0.5 MiB of an idle daemon's
    // ~10 MiB). Small allocations still go through per-thread caches.
    // SAFETY: called before any other thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let command = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(refusal) => {
            if refusal.code == 0 {
                print!("{}", refusal.message);
            } else {
                eprintln!("{}", refusal.message.trim_end());
            }
            return ExitCode::from(u8::try_from(refusal.code).unwrap_or(1));
        }
    };
    match command {
        Command::CheckConfig { config, overrides } => {
            match config::check_config(&config, &overrides) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(config::EXIT_CONFIG as u8)
                }
            }
        }
        Command::Demo => {
            let rt = match worker_threads(std::env::var_os(WORKER_THREADS_ENV)).and_then(|n| {
                runtime(n).map_err(|e| format!("cannot start the tokio runtime: {e}"))
            }) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(raftinel::demo::run()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, overrides } => run_daemon(&config, &overrides),
        Command::RaftAdmin { target, args } => raft_admin(&target, &args),
        Command::BootRedis(args) => ExitCode::from(raftinel::pod::boot::run(args)),
        Command::Ctl(ctl) => ExitCode::from(raftinel::pod::ctl::run(ctl)),
    }
}

/// `raftinel members` / `raftinel forget`: `SENTINEL RAFT <args>` sent to a
/// running daemon; its reply is printed (an error reply exits with 1).
fn raft_admin(target: &cli::Target, args: &[String]) -> ExitCode {
    let reply = redis::Client::open((target.host.as_str(), target.port))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .and_then(|mut conn| {
            conn.set_read_timeout(Some(Duration::from_secs(30)))?;
            if let Some(pass) = &target.pass {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = &target.user {
                    auth.arg(user);
                }
                auth.arg(pass).query::<()>(&mut conn)?;
            }
            redis::cmd("SENTINEL")
                .arg("RAFT")
                .arg(args)
                .query::<redis::Value>(&mut conn)
        });
    match reply {
        Ok(v) => {
            print_reply(&v, 0);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}:{}: {e}", target.host, target.port);
            ExitCode::FAILURE
        }
    }
}

fn print_reply(v: &redis::Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        redis::Value::Array(items) => {
            // A flat list of field/value pairs prints one pair a line.
            if items.iter().all(|i| !matches!(i, redis::Value::Array(_))) {
                for pair in items.chunks(2) {
                    let text: Vec<String> = pair.iter().map(value_text).collect();
                    println!("{pad}{}", text.join(" "));
                }
                return;
            }
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    println!();
                }
                print_reply(i, depth);
            }
        }
        other => println!("{pad}{}", value_text(other)),
    }
}

fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Okay => "OK".into(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

fn run_daemon(path: &Path, overrides: &[String]) -> ExitCode {
    let cfg = match config::load(path, overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(config::EXIT_CONFIG as u8);
        }
    };
    // A bad TOKIO_WORKER_THREADS is refused here, on the terminal, before
    // daemonize; the runtime itself is built after the fork.
    let workers = match worker_threads(std::env::var_os(WORKER_THREADS_ENV)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &cfg.server.dir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Can't chdir to '{dir}': {e}");
            return ExitCode::FAILURE;
        }
    }
    if cfg.server.daemonize {
        // Redis forks before anything else runs; so do we: no tokio worker
        // or other thread exists yet, so fork() is safe.
        if let Err(e) = daemonize() {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = observe::log::init(&cfg.server) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let pidfile = match (&cfg.server.pidfile, cfg.server.daemonize) {
        (Some(p), _) if !p.is_empty() => Some(PathBuf::from(p)),
        // Redis' default when daemonized without one.
        (_, true) => Some(PathBuf::from("/var/run/redis.pid")),
        _ => None,
    };
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file: {e}");
        }
    }
    let runtime = match runtime(workers) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(daemon(cfg));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => {
            tracing::warn!("Sentinel is now ready to exit, bye bye...");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::warn!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fork, let the parent exit, start a new session, point stdio at /dev/null.
fn daemonize() -> anyhow::Result<()> {
    // SAFETY: single-threaded at this point (no runtime, no logger threads);
    // the child only continues the normal startup.
    unsafe {
        match libc::fork() {
            -1 => anyhow::bail!("fork failed: {}", std::io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    Ok(())
}

/// The admin listener's routes: Prometheus metrics and the pod probes.
fn admin_routes(shared: &Arc<Daemon>) -> observe::admin::Routes {
    let metrics_from = Arc::downgrade(shared);
    let (live, ready, redis) = (
        shared.pod_handles(),
        shared.pod_handles(),
        shared.pod_handles(),
    );
    observe::admin::Routes::new()
        .get("/metrics", move || {
            observe::admin::Page::prometheus(
                metrics_from
                    .upgrade()
                    .map(|s| s.render_metrics())
                    .unwrap_or_default(),
            )
        })
        .get_async("/healthz", move |_| {
            raftinel::pod::probe::healthz(live.clone())
        })
        .get("/readyz", move || raftinel::pod::probe::readyz(&ready))
        .get_async("/readyz/redis", move |q| {
            raftinel::pod::probe::readyz_redis(redis.clone(), q)
        })
}

async fn daemon(cfg: Config) -> anyhow::Result<()> {
    let mut group = config::group_settings(&cfg);
    let tls_client = tls_client(&cfg.server)?;
    group.tls = tls_client.clone();
    let secret_from = cfg
        .raft
        .secret
        .as_ref()
        .map(|_| match &cfg.raft.secret_file {
            Some(f) => f.path.clone(),
            None => config::SECRET_ENV.to_string(),
        });
    let Config {
        server,
        mut sentinel,
        file,
        kubernetes,
        ..
    } = cfg;
    let pod = raftinel::pod::identity::Pod::from_env();
    let pod_identity = raftinel::pod::identity::apply(&mut sentinel, &pod);
    let mut signals = Signals::install();
    if let Some(w) = file.fallback_warning() {
        tracing::warn!("{w}");
    }
    let started = Instant::now();
    let opts = CoreOptions {
        port: server.sentinel_port(),
        rng_seed: rand::rngs::OsRng.next_u64(),
        requirepass: server.requirepass.clone(),
    };
    let (core, first_actions) = Sentinel::new(sentinel, opts, 0);
    let myid = core.myid().to_string();
    let bind_source = runtime::bind_source_addr(&file);
    let flusher: FlushFn = Box::new(move |server, state| {
        config::flush(&file, server, state).map_err(|e| e.to_string())
    });
    let (shared, inboxes) = Daemon::new(core, server.clone(), Some(flusher), started);
    let client_port = log_start(&server, &myid, &pod, pod_identity);
    // The first flush persists a freshly generated myid before we serve.
    shared
        .driver
        .execute(first_actions)
        .context("Sentinel config file could not be written")?;

    // Raft storage is opened (and verified) before any port is bound: a
    // damaged log stops the daemon here, never replayed.
    let (raft, mut fatal) = shared
        .start_raft(group, inboxes.raft)
        .await
        .context("cannot start the raft node")?;
    raftinel::consensus::trust::log_mode(
        secret_from.as_deref(),
        &shared.driver.lock_core().sentinel_auth(),
        client_port,
    );

    let listeners = raftinel::server::bind_listeners(&server)
        .await
        .context("cannot bind the sentinel port")?;
    let admin = bind_admin(&server).await?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(raftinel::server::serve(shared.server_handles(), listeners));
    tasks.spawn(runtime::run_driver(
        shared.driver.clone(),
        inboxes.links,
        bind_source,
        tls_client,
        shared.shutdown.clone(),
    ));
    tasks.spawn(shared.script_runner());
    if pod.name.is_some() {
        tasks.spawn(raftinel::pod::repoint::run(shared.pod_handles()));
    }
    if let Some(k) = &kubernetes {
        spawn_kubernetes(k, &shared, &mut tasks)?;
    }
    if let Some(listener) = admin {
        tasks.spawn(observe::admin::serve(
            listener,
            admin_routes(&shared),
            shared.shutdown.clone(),
        ));
    }
    if server
        .supervised
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("systemd"))
    {
        notify_systemd();
    }

    let failure = wait_for_shutdown(&shared, &mut signals, &mut fatal, &mut tasks).await;
    if failure.is_none() {
        tracing::warn!("User requested shutdown...");
        hand_over_leadership(&shared, &raft).await;
    }
    shared.shutdown.cancel();
    raft.shutdown().await;
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop within {DRAIN:?}; exiting anyway");
    }
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// The Kubernetes API tasks (`[kubernetes]`; the config loader refuses the
/// table in a build without the `k8s` feature).
#[cfg(feature = "k8s")]
fn spawn_kubernetes(
    k: &config::KubeOptions,
    shared: &Daemon,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<()> {
    let server = shared
        .server_config
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let local = raftinel::pod::local::Daemon::of_server(&server);
    let t = raftinel::k8s::start(k, shared.pod_handles(), &shared.hub, local)
        .map_err(anyhow::Error::msg)?;
    tasks.spawn(t.labels);
    tasks.spawn(t.events);
    Ok(())
}

#[cfg(not(feature = "k8s"))]
fn spawn_kubernetes(
    _: &config::KubeOptions,
    _: &Daemon,
    _: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<()> {
    anyhow::bail!("[kubernetes] needs a build with the k8s feature")
}

/// The admin HTTP listener, when `admin-addr` is set.
async fn bind_admin(
    server: &config::ServerConfig,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = &server.admin_addr else {
        return Ok(None);
    };
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind admin-addr {addr}"))?;
    Ok(Some(l))
}

/// The TLS settings of the outbound links with `tls-replication yes`
/// (read at load already; again here, from `dir`).
fn tls_client(
    server: &config::ServerConfig,
) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
    if !server.tls_replication {
        return Ok(None);
    }
    raftinel::links::tls::client_config(&server.tls, std::path::Path::new("."))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("Failed to configure TLS: {}: {e}", e.directive))
}

/// Sentinel's start lines, and the pod's; the client port named (Redis
/// names `port`, else `tls-port`).
fn log_start(
    server: &config::ServerConfig,
    myid: &str,
    pod: &raftinel::pod::identity::Pod,
    pod_identity: Option<String>,
) -> u16 {
    let client_port = if server.port != 0 {
        server.port
    } else {
        server.tls_port
    };
    tracing::info!("Running mode=sentinel, port={client_port}.");
    tracing::warn!("Sentinel ID is {myid}");
    if let Some(name) = &pod.name {
        tracing::info!(
            "Pod {name} in namespace {}, IP {}, on node {}",
            pod.namespace.as_deref().unwrap_or("?"),
            pod.ip.as_deref().unwrap_or("?"),
            pod.node.as_deref().unwrap_or("?")
        );
    }
    if let Some(line) = pod_identity {
        tracing::info!("{line}");
    }
    client_port
}

/// A leader hands its leadership over before it goes (its Raft node
/// stops; the core is told it no longer leads).
async fn hand_over_leadership(shared: &Daemon, raft: &raftinel::consensus::node::RaftNode) {
    if raftinel::consensus::handover::successor(raft).is_none() {
        return;
    }
    shared
        .driver
        .feed(raftinel::core::Input::Raft(raftinel::core::RaftView {
            node_id: raft.id,
            initialized: true,
            is_leader: false,
            voters: 0,
            leader: None,
        }));
    if let Some(line) = raftinel::consensus::handover::hand_over(raft).await {
        tracing::warn!("{line}");
    }
}

/// SIGTERM / SIGINT streams, installed before anything is served so that a
/// signal arriving right after startup is still a graceful shutdown.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Waits for a signal, a shutdown request, or a condition the daemon cannot
/// run with (returned: the daemon stops with it): a fatal one found by the
/// Raft node, or one of the daemon's tasks ending on its own (a panic never
/// gets here: the panic hook ends the process).
async fn wait_for_shutdown(
    shared: &Daemon,
    signals: &mut Signals,
    fatal: &mut raftinel::consensus::driver::Fatal,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Option<String> {
    tokio::select! {
        _ = recv_signal(&mut signals.term) => tracing::warn!("Received SIGTERM scheduling shutdown..."),
        _ = recv_signal(&mut signals.int) => tracing::warn!("Received SIGINT scheduling shutdown..."),
        _ = shared.shutdown.cancelled() => {}
        Some(why) = fatal.recv() => return Some(why),
        Some(ended) = tasks.join_next() => {
            if shared.shutdown.is_cancelled() {
                return None;
            }
            return Some(match ended {
                Ok(()) => "a daemon task ended unexpectedly; stopping".to_string(),
                Err(e) => format!("a daemon task failed: {e}; stopping"),
            });
        }
    }
    None
}

/// `supervised systemd`: tell systemd we are ready (sd_notify READY=1).
fn notify_systemd() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", PathBuf::from(path))
    };
    if let Err(e) = sent {
        tracing::warn!("sd_notify READY=1 failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_thread_unless_told() {
        assert_eq!(worker_threads(None), Ok(1));
        assert_eq!(worker_threads(Some("4".into())), Ok(4));
        assert_eq!(worker_threads(Some(" 2 ".into())), Ok(2));
        for bad in ["0", "-1", "two", "", "65", "99999999999999999999999"] {
            let e = worker_threads(Some(bad.into())).unwrap_err();
            assert!(
                e.starts_with(&format!("TOKIO_WORKER_THREADS={bad}: ")),
                "{e}"
            );
        }
    }
}
