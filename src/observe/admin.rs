//! The admin HTTP listener (off unless `admin-addr` is configured): a tiny
//! HTTP/1.1 responder serving `GET /metrics` (Prometheus text) and
//! `GET /healthz`. One request per connection, bounded request size, every
//! read and write under a timeout; it never touches the core directly, it only
//! calls the render function it is given.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Request head larger than this is refused.
const MAX_HEAD: usize = 8192;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Produces the Prometheus text body.
pub type RenderFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves until `shutdown` fires.
pub async fn serve(listener: TcpListener, render: RenderFn, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let render = render.clone();
                    tokio::spawn(async move {
                        if let Err(err) = handle(stream, render).await {
                            tracing::debug!("admin http: {err}");
                        }
                    });
                }
                Err(err) => {
                    tracing::debug!("admin http accept: {err}");
                    // Out of fds and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn handle(mut stream: TcpStream, render: RenderFn) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let head_complete = tokio::time::timeout(IO_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Ok::<bool, std::io::Error>(true);
            }
            if buf.len() > MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(!buf.is_empty());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    })
    .await;
    let response = match head_complete {
        Ok(Ok(true)) => respond(&buf, &render),
        Ok(Ok(false)) => reply(
            431,
            "Request Header Fields Too Large",
            "text/plain",
            "too large\n",
        ),
        Ok(Err(e)) => return Err(e),
        Err(_) => reply(408, "Request Timeout", "text/plain", "timeout\n"),
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The response for one request head (pure: tested directly).
pub fn respond(head: &[u8], render: &RenderFn) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => reply(
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(),
        ),
        ("GET", "/healthz") => reply(200, "OK", "text/plain", "ok\n"),
        ("GET", _) => reply(404, "Not Found", "text/plain", "not found\n"),
        _ => reply(
            405,
            "Method Not Allowed",
            "text/plain",
            "method not allowed\n",
        ),
    }
}

fn reply(code: u16, reason: &str, ctype: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render() -> RenderFn {
        Arc::new(|| "raftinel_masters 1\n".to_string())
    }

    #[test]
    fn metrics_and_healthz() {
        let r = String::from_utf8(respond(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            &render(),
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(r.contains("Content-Length: 19\r\n"));
        assert!(r.ends_with("\r\n\r\nraftinel_masters 1\n"));
        let r = String::from_utf8(respond(b"GET /healthz HTTP/1.0\r\n\r\n", &render())).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("ok\n"));
        let r = String::from_utf8(respond(b"GET /nope HTTP/1.1\r\n\r\n", &render())).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 "));
        let r = String::from_utf8(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &render())).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 "));
        let r = String::from_utf8(respond(b"\xff\xfe garbage", &render())).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 "));
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, render(), stop.clone()));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"));
        assert!(out.ends_with("raftinel_masters 1\n"));
        stop.cancel();
        task.await.unwrap();
    }
}
