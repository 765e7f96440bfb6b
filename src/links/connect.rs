//! Opening the socket of a link: hostname resolution and TCP connect, both
//! under timeouts, plus a tiny byte-exact RESP reader used for the pubsub
//! handshake (it reads one byte at a time so that nothing that follows the
//! handshake replies is consumed before the stream is handed to the `redis`
//! crate).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
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
    #[error("protocol error: {0}")]
    Protocol(String),
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
/// bind to (§4.2).
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

/// A RESP2 reply as read by [`read_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawReply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<RawReply>>),
}

const MAX_LINE: usize = 64 * 1024;
const MAX_BULK: usize = 64 * 1024 * 1024;
const MAX_DEPTH: usize = 8;

async fn read_line<R: AsyncRead + Unpin + Send>(r: &mut R) -> Result<String, ConnectError> {
    let mut line = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(b);
        if line.len() > MAX_LINE {
            return Err(ConnectError::Protocol("line too long".into()));
        }
    }
}

/// Reads exactly one RESP2 reply, byte by byte.
pub async fn read_reply<R: AsyncRead + Unpin + Send>(r: &mut R) -> Result<RawReply, ConnectError> {
    read_reply_depth(r, 0).await
}

/// A boxed future: the reader recurses into array elements.
type ReplyFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<RawReply, ConnectError>> + Send + 'a>,
>;

fn read_reply_depth<R: AsyncRead + Unpin + Send>(r: &mut R, depth: usize) -> ReplyFuture<'_> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(ConnectError::Protocol("reply nested too deep".into()));
        }
        let line = read_line(r).await?;
        let (tag, rest) = match line.char_indices().nth(1) {
            Some((i, _)) => line.split_at(i),
            None => (line.as_str(), ""),
        };
        let bad = || ConnectError::Protocol(format!("bad reply line {line:?}"));
        match tag {
            "+" => Ok(RawReply::Status(rest.to_string())),
            "-" => Ok(RawReply::Error(rest.to_string())),
            ":" => rest.parse().map(RawReply::Int).map_err(|_| bad()),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(RawReply::Bulk(None));
                }
                let n = usize::try_from(n).map_err(|_| bad())?;
                if n > MAX_BULK {
                    return Err(bad());
                }
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(n);
                Ok(RawReply::Bulk(Some(buf)))
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(RawReply::Array(None));
                }
                let n = usize::try_from(n).map_err(|_| bad())?;
                if n > 1024 {
                    return Err(bad());
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_reply_depth(r, depth + 1).await?);
                }
                Ok(RawReply::Array(Some(items)))
            }
            _ => Err(bad()),
        }
    })
}

/// RESP2 encoding of one command.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_one_reply_and_nothing_more() {
        let data: &[u8] = b"+OK\r\n-NOAUTH Authentication required.\r\n*3\r\n$9\r\nsubscribe\r\n$18\r\n__sentinel__:hello\r\n:1\r\n*3\r\n$7\r\nmessage";
        let mut r = data;
        assert_eq!(
            read_reply(&mut r).await.unwrap(),
            RawReply::Status("OK".into())
        );
        assert_eq!(
            read_reply(&mut r).await.unwrap(),
            RawReply::Error("NOAUTH Authentication required.".into())
        );
        assert_eq!(
            read_reply(&mut r).await.unwrap(),
            RawReply::Array(Some(vec![
                RawReply::Bulk(Some(b"subscribe".to_vec())),
                RawReply::Bulk(Some(b"__sentinel__:hello".to_vec())),
                RawReply::Int(1),
            ]))
        );
        assert_eq!(r, b"*3\r\n$7\r\nmessage");
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        for bad in [&b"?\r\n"[..], b"$x\r\n", b"*99999999\r\n", b"$5\r\nab", b""] {
            let mut r = bad;
            assert!(read_reply(&mut r).await.is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn encodes_commands() {
        assert_eq!(
            encode_command(&[b"CLIENT", b"SETNAME", b"x"]),
            b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n".to_vec()
        );
    }
}
