//! Opening the socket of a link: hostname resolution and TCP connect, both
//! under timeouts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

/// Name resolution is bounded so a slow DNS server never stalls a link for long.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Sentinel retries a failed connect every ping-period (1 s); a blackholed
/// address must not hold a link attempt much longer than that.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("can't resolve '{0}'")]
    Resolve(String),
    #[error("resolving '{0}' timed out")]
    ResolveTimeout(String),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("invalid port 0")]
    NoPort,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ConnectError {
    /// The host answered that nothing listens on the port.
    pub fn is_refused(&self) -> bool {
        matches!(self, ConnectError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// Resolves `host` (an IP literal, or a name looked up with tokio's resolver).
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConnectError> {
    if port == 0 {
        return Err(ConnectError::NoPort);
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.is_empty() {
        return Err(ConnectError::Resolve(host.to_string()));
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(ConnectError::ResolveTimeout(host.to_string())),
        Ok(Err(_)) => Err(ConnectError::Resolve(host.to_string())),
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| ConnectError::Resolve(host.to_string())),
    }
}

/// Connects with a timeout and returns the stream with its local IP (the
/// address peers see us at: it goes into hello messages).
pub async fn connect(host: &str, port: u16) -> Result<(TcpStream, String), ConnectError> {
    connect_from(host, port, None).await
}

/// [`connect`] with `bind-source-addr`: the local address outbound sockets
/// bind to.
pub async fn connect_from(
    host: &str,
    port: u16,
    bind_source: Option<IpAddr>,
) -> Result<(TcpStream, String), ConnectError> {
    let addr = resolve(host, port).await?;
    let connecting = async {
        match bind_source {
            None => TcpStream::connect(addr).await,
            Some(src) => {
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(src, 0))?;
                socket.connect(addr).await
            }
        }
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ConnectError::ConnectTimeout)??;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?.ip();
    // An IPv4 peer reached over a dual-stack socket shows a mapped address;
    // peers know us by the plain IPv4 form.
    let local = match local {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    Ok((stream, local.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literals_and_rejects_port_zero() {
        assert_eq!(
            resolve("127.0.0.1", 6379).await.unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(resolve("::1", 1).await.unwrap(), "[::1]:1".parse().unwrap());
        assert!(matches!(
            resolve("127.0.0.1", 0).await,
            Err(ConnectError::NoPort)
        ));
        assert!(resolve("", 1).await.is_err());
    }

    #[tokio::test]
    async fn binds_the_source_address() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (_s, local) = connect_from("127.0.0.1", port, Some("127.0.0.1".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(local, "127.0.0.1");
        let (_, peer) = l.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.1");
        // A source of the wrong family is a connection failure, not a panic.
        assert!(
            connect_from("127.0.0.1", port, Some("::1".parse().unwrap()))
                .await
                .is_err()
        );
    }
}
