//! Listening sockets and the accept loop.
//!
//! [`bind_listeners`] turns the `port`/`bind` configuration into sockets
//! (default `* -::*`: 0.0.0.0 and, when the host has IPv6, `::` in v6-only
//! mode; a `-` prefix makes an address optional). [`serve`] accepts clients
//! until `shutdown` is cancelled, limiting them to `maxclients` with a
//! semaphore: the client over the limit gets `-ERR max number of clients
//! reached` and is closed.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio::time::Instant;

use super::client::ClientHandle;
use super::stats::add;
use super::{conn, Server};
use crate::config::ServerConfig;

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.3.2.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("Invalid bind address '{0}'")]
    BadAddress(String),
    #[error("Could not create server TCP listening socket {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed listening on port {0} (tcp), aborting.")]
    NoListener(u16),
    #[error("Failed to configure TLS: {0}")]
    Tls(String),
    #[error("Failed opening Unix socket: {0}")]
    Unix(String),
    #[error("Configured to not listen anywhere, exiting.")]
    Nowhere,
}

fn listen_on(ip: IpAddr, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    let sock = if ip.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    sock.set_reuseaddr(true)?;
    if ip.is_ipv6() {
        // Like Redis: the IPv6 socket does not also take IPv4 (0.0.0.0 has its own).
        let fd = sock.as_raw_fd();
        let on: libc::c_int = 1;
        // SAFETY: setsockopt on a valid socket fd with a correctly sized int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    sock.bind(addr)?;
    sock.listen(backlog)
}

/// The client listeners: `port` (plain TCP) and `tls-port` with its TLS
/// configuration.
pub struct Listeners {
    pub plain: Vec<TcpListener>,
    pub tls: Vec<TcpListener>,
    pub tls_config: Option<Arc<rustls::ServerConfig>>,
    /// `unixsocket`, with its path as configured.
    pub unix: Option<(UnixListener, String)>,
}

impl Listeners {
    /// Plain listeners only (tests).
    pub fn plain(plain: Vec<TcpListener>) -> Listeners {
        Listeners {
            plain,
            tls: Vec::new(),
            tls_config: None,
            unix: None,
        }
    }
}

/// Binds the configured addresses on `port` and `tls-port` (must run inside
/// a tokio runtime). The TLS configuration was checked when the
/// configuration loaded; it is read again here from the working directory
/// (`dir`).
pub async fn bind_listeners(cfg: &ServerConfig) -> Result<Listeners, BindError> {
    let tls_config = if cfg.tls_port == 0 {
        None
    } else {
        Some(
            crate::links::tls::server_config(&cfg.tls, std::path::Path::new("."))
                .map_err(|e| BindError::Tls(format!("{}: {e}", e.directive)))?,
        )
    };
    if cfg.port == 0 && cfg.tls_port == 0 && cfg.unixsocket.is_none() {
        return Err(BindError::Nowhere);
    }
    Ok(Listeners {
        plain: bind_port(cfg, cfg.port)?,
        tls: bind_port(cfg, cfg.tls_port)?,
        tls_config,
        unix: bind_unix(cfg)?,
    })
}

/// `unixsocket` (relative to `dir`, the working directory), as Redis binds
/// it: a stale file at the path is removed first, the mode set to
/// `unixsocketperm` when not 0, the backlog `tcp-backlog`.
fn bind_unix(cfg: &ServerConfig) -> Result<Option<(UnixListener, String)>, BindError> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = &cfg.unixsocket else {
        return Ok(None);
    };
    let failed = |e: std::io::Error| BindError::Unix(format!("{path}: {e}"));
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(failed)?;
    let backlog = cfg.tcp_backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: listen(2) again on a listening socket only resizes its backlog.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    if cfg.unixsocketperm != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.unixsocketperm))
            .map_err(failed)?;
    }
    Ok(Some((l, path.clone())))
}

/// A listening socket of any kind, and what it accepted.
enum Listener {
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
    Unix(UnixListener, String),
}

enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l, _) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// `port 0` (or `tls-port 0`): no listener for it.
fn bind_port(cfg: &ServerConfig, port: u16) -> Result<Vec<TcpListener>, BindError> {
    if port == 0 {
        return Ok(Vec::new());
    }
    let binds: Vec<String> = if cfg.bind.is_empty() {
        vec!["*".into(), "-::*".into()]
    } else {
        cfg.bind.clone()
    };
    let mut out = Vec::new();
    for b in &binds {
        let (optional, name) = match b.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, b.as_str()),
        };
        let ip: IpAddr = match name {
            "*" => IpAddr::from([0u8; 4]),
            "::*" => IpAddr::from([0u16; 8]),
            other => other
                .parse()
                .map_err(|_| BindError::BadAddress(b.clone()))?,
        };
        match listen_on(ip, port, cfg.tcp_backlog) {
            Ok(l) => out.push(l),
            Err(e) if optional => {
                tracing::debug!("optional bind {name} skipped: {e}");
            }
            Err(source) => {
                return Err(BindError::Bind {
                    addr: format!("{name}:{port}"),
                    source,
                })
            }
        }
    }
    if out.is_empty() {
        return Err(BindError::NoListener(port));
    }
    Ok(out)
}

/// Accepts clients on every listener until `h.shutdown` is cancelled,
/// then waits (briefly) for the connections to close.
pub async fn serve(h: super::Handles, listeners: Listeners) {
    // INFO's tcp_port: `port`, else `tls-port` (as Redis).
    let port = listeners
        .plain
        .first()
        .or(listeners.tls.first())
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(0);
    let acceptor = listeners.tls_config.map(tokio_rustls::TlsAcceptor::from);
    let unix_path = listeners.unix.as_ref().map(|(_, p)| p.clone());
    let all: Vec<Listener> = listeners
        .plain
        .into_iter()
        .map(|l| Listener::Tcp(l, None))
        .chain(
            listeners
                .tls
                .into_iter()
                .map(|l| Listener::Tcp(l, acceptor.clone())),
        )
        .chain(listeners.unix.map(|(l, p)| Listener::Unix(l, p)))
        .collect();
    let shutdown = h.shutdown.clone();
    let server = match Server::new(h, port) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            // Serving with a half-read user table would be a security hole.
            tracing::error!("ACL configuration error: {e}; shutting down");
            shutdown.cancel();
            return;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    {
        // Instantaneous rates, sampled like Redis's serverCron (every 100 ms).
        let server = server.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => server.stats.sample(server.started.elapsed().as_millis() as u64),
                    _ = stop.cancelled() => break,
                }
            }
        });
    }
    for l in all {
        let server = server.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok(Accepted::Tcp(stream)) => {
                            let tls = match &l {
                                Listener::Tcp(_, tls) => tls.as_ref(),
                                Listener::Unix(..) => None,
                            };
                            accept(&server, stream, tls, &mut conns).await
                        }
                        Ok(Accepted::Unix(stream)) => {
                            let path = match &l {
                                Listener::Unix(_, p) => p.as_str(),
                                Listener::Tcp(..) => "",
                            };
                            accept_unix(&server, stream, path, &mut conns).await
                        }
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!("Accepting client connection: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = stop.cancelled() => break,
                }
            }
            // Connections see the same token and exit; give them a moment to flush.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while conns.join_next().await.is_some() {}
            })
            .await;
        });
    }
    while tasks.join_next().await.is_some() {}
    // As Redis at shutdown: the socket file goes with the daemon.
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
}

/// Sent (then the connection is closed) to non-loopback clients while
/// protected mode is on and the default user has no password.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Writes a refusal and drops the connection (bounded: the client is
/// closed either way). On the TLS port the connection is only closed: plain
/// bytes would be garbage to a client that expects a handshake, and doing
/// the handshake first would spend the work the refusal saves.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    msg: &[u8],
) {
    if tls.is_some() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(msg)).await;
}

/// A client of `unixsocket`: local, so protected mode lets it in (as
/// Redis); CLIENT LIST shows `addr=<path>:0 laddr=<path>:0` and flag `U`.
async fn accept_unix(
    server: &Arc<Server>,
    stream: UnixStream,
    path: &str,
    conns: &mut tokio::task::JoinSet<()>,
) {
    let mut stream = stream;
    let Some(permit) = slot(server, &mut stream, None).await else {
        return;
    };
    let addr = format!("{path}:0");
    let handle = register(server, addr.clone(), addr, stream.as_raw_fd(), true);
    let (rd, wr) = stream.into_split();
    conns.spawn(conn::run(server.clone(), rd, wr, handle, permit));
}

/// A connection slot (`maxclients`), or the refusal sent and None.
async fn slot<S: AsyncWrite + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    tls: Option<&tokio_rustls::TlsAcceptor>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let Ok(permit) = server.slots.clone().try_acquire_owned() else {
        add(&server.stats.rejected_connections, 1);
        refuse(stream, tls, b"-ERR max number of clients reached\r\n").await;
        return None;
    };
    add(&server.stats.connections_received, 1);
    Some(permit)
}

/// The client's entry in the registry (CLIENT LIST, CLIENT KILL).
fn register(
    server: &Arc<Server>,
    addr: String,
    laddr: String,
    fd: std::os::fd::RawFd,
    unix: bool,
) -> Arc<ClientHandle> {
    let mut handle = ClientHandle::new(server.registry.next_id(), addr, laddr, fd, Instant::now());
    handle.unix = unix;
    let handle = Arc::new(handle);
    server.registry.add(handle.clone());
    handle
}

async fn accept(
    server: &Arc<Server>,
    stream: TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    conns: &mut tokio::task::JoinSet<()>,
) {
    let mut stream = stream;
    let Some(permit) = slot(server, &mut stream, tls).await else {
        return;
    };
    let protected = server
        .config
        .lock()
        .expect("the server configuration lock is poisoned")
        .protected_mode;
    if protected && server.acl().default_nopass() {
        if let Ok(peer) = stream.peer_addr() {
            if !is_loopback(peer.ip()) {
                refuse(&mut stream, tls, PROTECTED_MODE_DENIED).await;
                return;
            }
        }
    }
    let _ = stream.set_nodelay(true);
    if server.limits.keepalive > 0 {
        if let Err(e) = set_keepalive(stream.as_raw_fd(), server.limits.keepalive) {
            tracing::debug!("tcp-keepalive on a client socket: {e}");
        }
    }
    let addr = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let handle = register(server, addr, laddr, stream.as_raw_fd(), false);
    match tls {
        None => conns.spawn(conn::run_plain(server.clone(), stream, handle, permit)),
        Some(acceptor) => conns.spawn(conn::run_tls(
            server.clone(),
            acceptor.clone(),
            stream,
            handle,
            permit,
        )),
    };
}

/// TCP keepalive as Redis's `anetKeepAlive` sets it: probes after `interval`
/// seconds of silence, then every third of it, the peer dropped after 3
/// unanswered ones.
fn set_keepalive(fd: std::os::fd::RawFd, interval: u64) -> std::io::Result<()> {
    let idle = interval.min(i32::MAX as u64) as libc::c_int;
    let opts = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (idle / 3).max(1)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in opts {
        // SAFETY: setsockopt on a valid socket fd with a correctly sized int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
