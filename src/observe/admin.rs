//! The admin HTTP listener (off unless `admin-addr` is configured), on hyper's
//! HTTP/1 server: `GET` routes built with [`Routes`], one line each (see
//! `main`, which serves `/metrics` in the Prometheus text format and
//! `/healthz`). Connections are capped at [`MAX_CONNECTIONS`], a request head
//! must arrive within [`IO_TIMEOUT`] and fit in [`MAX_HEAD`] bytes, a
//! connection lives at most [`CONNECTION_TIMEOUT`], and every response closes
//! its connection. It never touches the core directly: it only calls the
//! handlers it is given.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head (hyper's read buffer; its minimum is 8 KiB).
pub const MAX_HEAD: usize = 8192;
/// Time allowed for a request head to arrive.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may live, slow readers included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Produces the Prometheus text body.
pub type RenderFn = Arc<dyn Fn() -> String + Send + Sync>;

/// A response body with its status and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    /// `200 OK` with a plain text body.
    pub fn text(body: impl Into<String>) -> Page {
        Page {
            status: StatusCode::OK,
            content_type: "text/plain",
            body: body.into(),
        }
    }

    /// `200 OK` with a Prometheus text body.
    pub fn prometheus(body: String) -> Page {
        Page {
            status: StatusCode::OK,
            content_type: PROMETHEUS_TEXT,
            body,
        }
    }

    fn error(status: StatusCode, body: &str) -> Page {
        Page {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }
}

/// The decoded query string of a request (`?a=1&b=2`); a repeated key keeps
/// its last value.
pub type Query = std::collections::HashMap<String, String>;

type PageFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Page> + Send>>;
type Handler = Arc<dyn Fn(Query) -> PageFuture + Send + Sync>;

/// Decodes `a=1&b=%2F` (percent escapes and `+`; malformed escapes are kept
/// as they are).
pub fn parse_query(q: &str) -> Query {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = s
                        .get(i + 1..i + 3)
                        .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The paths served, each with its handler (answering `GET`).
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(&'static str, Handler)>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Serves `GET path` with `handler`.
    pub fn get(
        self,
        path: &'static str,
        handler: impl Fn() -> Page + Send + Sync + 'static,
    ) -> Routes {
        let handler = Arc::new(handler);
        self.get_async(path, move |_| {
            let page = handler();
            async move { page }
        })
    }

    /// Serves `GET path` with an async `handler` given the query string.
    pub fn get_async<F>(
        mut self,
        path: &'static str,
        handler: impl Fn(Query) -> F + Send + Sync + 'static,
    ) -> Routes
    where
        F: std::future::Future<Output = Page> + Send + 'static,
    {
        self.routes
            .push((path, Arc::new(move |q| Box::pin(handler(q)) as PageFuture)));
        self
    }

    /// The page for one request: the route's, 404 for an unknown path, 405
    /// for any method but GET.
    pub async fn respond(&self, method: &Method, path: &str, query: Option<&str>) -> Page {
        if method != Method::GET {
            return Page::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match self.routes.iter().find(|(p, _)| *p == path) {
            Some((_, handler)) => handler(parse_query(query.unwrap_or(""))).await,
            None => Page::error(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn to_response(page: Page) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(page.body)));
    *r.status_mut() = page.status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    r
}

/// Serves until `shutdown` fires.
pub async fn serve(listener: TcpListener, routes: Routes, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let routes = Arc::new(routes);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::debug!("admin http accept: {err}");
                    // Out of fds and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let routes = routes.clone();
                async move {
                    let page = routes
                        .respond(req.method(), req.uri().path(), req.uri().query())
                        .await;
                    Ok::<_, Infallible>(to_response(page))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IO_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!("admin http: {err}"),
                Err(_) => tracing::debug!("admin http: connection timed out"),
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn routes() -> Routes {
        Routes::new()
            .get("/metrics", || {
                Page::prometheus("raftinel_masters 1\n".into())
            })
            .get("/healthz", || Page::text("ok\n"))
    }

    #[tokio::test]
    async fn routing() {
        let r = routes().get_async("/q", |q: Query| async move {
            Page::text(format!("{:?}", q.get("max-lag-bytes")))
        });
        assert_eq!(
            r.respond(&Method::GET, "/metrics", None).await,
            Page::prometheus("raftinel_masters 1\n".into())
        );
        assert_eq!(r.respond(&Method::GET, "/healthz", None).await.body, "ok\n");
        assert_eq!(
            r.respond(&Method::GET, "/nope", None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            r.respond(&Method::POST, "/metrics", None).await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            r.respond(&Method::GET, "/q", Some("a=b&max-lag-bytes=10%30"))
                .await
                .body,
            "Some(\"100\")"
        );
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("a=1&b=x%2Fy+z&c&%zz=%");
        assert_eq!(q["a"], "1");
        assert_eq!(q["b"], "x/y z");
        assert_eq!(q["c"], "");
        assert_eq!(q["%zz"], "%");
    }

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("the server closes the connection")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn serves_over_tcp_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, routes(), stop.clone()));
        let out = get(addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(out.contains("Content-Length: 19\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nraftinel_masters 1\n"), "{out}");
        let out = get(addr, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(
            out.contains(" 200 OK\r\n") && out.ends_with("ok\n"),
            "{out}"
        );
        let out = get(addr, b"POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
        let out = get(addr, b"\xff\xfe garbage\r\n\r\n").await;
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400 "), "{out}");
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let out = get(addr, huge.as_bytes()).await;
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 431 "), "{out}");
        stop.cancel();
        task.await.unwrap();
    }
}
