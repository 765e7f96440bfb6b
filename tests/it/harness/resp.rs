//! A blocking RESP2/RESP3 client for raw-byte tests.
//!
//! Frames are read with the crate's decoder (`raftinel::resp`), which keeps
//! every wire form apart, and turned into a typed [`Resp`] value so tests can
//! compare shapes (status vs bulk, null array vs RESP3 null, map vs flat
//! array) and print both sides on a mismatch. Every read has a deadline; a
//! test never blocks on a silent peer.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raftinel::resp::{encode_command, format_double, Decoder, Frame, Limits};

/// Default bound for one reply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One RESP frame, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1`.
    NullBulk,
    /// RESP2 `*-1`.
    NullArray,
    /// RESP3 `_`.
    Null,
    Double(String),
    Bool(bool),
    BigNum(String),
    Verbatim(String, Vec<u8>),
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
}

impl Resp {
    pub fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }

    /// Text of a status, error, bulk or verbatim value.
    pub fn as_str(&self) -> Option<String> {
        match self {
            Resp::Status(s) | Resp::Error(s) | Resp::Double(s) | Resp::BigNum(s) => Some(s.clone()),
            Resp::Bulk(b) | Resp::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Resp::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Elements of an array, set or push.
    pub fn items(&self) -> Option<&[Resp]> {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// Field/value pairs of an instance description or any map-like reply:
    /// a RESP3 map, or a RESP2 flat array of even length.
    pub fn pairs(&self) -> Option<Vec<(String, Resp)>> {
        match self {
            Resp::Map(m) => Some(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default(), v.clone()))
                    .collect(),
            ),
            Resp::Array(v) if v.len() % 2 == 0 => Some(
                v.chunks(2)
                    .map(|c| (c[0].as_str().unwrap_or_default(), c[1].clone()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Value of `field` in a map-like reply, as text.
    pub fn field(&self, field: &str) -> Option<String> {
        self.pairs()?
            .into_iter()
            .find(|(k, _)| k == field)
            .and_then(|(_, v)| v.as_str())
    }

    /// A `SENTINEL REPLICAS` entry for a replica in good health: flags just
    /// `slave`, its link to the master `ok`.
    pub fn is_healthy_replica(&self) -> bool {
        self.field("flags").as_deref() == Some("slave")
            && self.field("master-link-status").as_deref() == Some("ok")
    }

    /// Multi-line rendering with explicit types, for failure messages.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.render(&mut out, 0);
        out
    }

    fn render(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        match self {
            Resp::Status(s) => {
                let _ = writeln!(out, "{pad}+{s:?}");
            }
            Resp::Error(s) => {
                let _ = writeln!(out, "{pad}-{s:?}");
            }
            Resp::Int(i) => {
                let _ = writeln!(out, "{pad}:{i}");
            }
            Resp::Bulk(b) => {
                let _ = writeln!(out, "{pad}${:?}", String::from_utf8_lossy(b));
            }
            Resp::NullBulk => {
                let _ = writeln!(out, "{pad}$-1 (null bulk)");
            }
            Resp::NullArray => {
                let _ = writeln!(out, "{pad}*-1 (null array)");
            }
            Resp::Null => {
                let _ = writeln!(out, "{pad}_ (RESP3 null)");
            }
            Resp::Double(s) => {
                let _ = writeln!(out, "{pad},{s}");
            }
            Resp::Bool(b) => {
                let _ = writeln!(out, "{pad}#{}", if *b { 't' } else { 'f' });
            }
            Resp::BigNum(s) => {
                let _ = writeln!(out, "{pad}({s}");
            }
            Resp::Verbatim(f, b) => {
                let _ = writeln!(out, "{pad}={f}:{:?}", String::from_utf8_lossy(b));
            }
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => {
                let sigil = match self {
                    Resp::Array(_) => '*',
                    Resp::Set(_) => '~',
                    _ => '>',
                };
                let _ = writeln!(out, "{pad}{sigil}{}", v.len());
                for item in v {
                    item.render(out, depth + 1);
                }
            }
            Resp::Map(m) => {
                let _ = writeln!(out, "{pad}%{}", m.len());
                for (k, v) in m {
                    k.render(out, depth + 1);
                    v.render(out, depth + 2);
                }
            }
        }
    }
}

/// The harness's view of a decoded frame.
fn from_frame(f: Frame) -> Resp {
    let all = |v: Vec<Frame>| v.into_iter().map(from_frame).collect();
    match f {
        Frame::Simple(s) => Resp::Status(s),
        Frame::Error(s) => Resp::Error(s),
        Frame::Integer(i) => Resp::Int(i),
        Frame::Bulk(b) => Resp::Bulk(b),
        Frame::NullBulk => Resp::NullBulk,
        Frame::NullArray => Resp::NullArray,
        Frame::Null => Resp::Null,
        Frame::Boolean(b) => Resp::Bool(b),
        Frame::Double(d) => Resp::Double(format_double(d)),
        Frame::BigNumber(n) => Resp::BigNum(n),
        Frame::Verbatim(fmt, b) => Resp::Verbatim(String::from_utf8_lossy(&fmt).into_owned(), b),
        Frame::Array(v) => Resp::Array(all(v)),
        Frame::Set(v) => Resp::Set(all(v)),
        Frame::Push(v) => Resp::Push(all(v)),
        Frame::Map(m) => Resp::Map(
            m.into_iter()
                .map(|(k, v)| (from_frame(k), from_frame(v)))
                .collect(),
        ),
    }
}

/// What a read produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Frame(Resp),
    /// The peer closed the connection (EOF or reset) before a full frame.
    Closed,
    /// No full frame before the deadline.
    Timeout,
}

impl Reply {
    pub fn describe(&self) -> String {
        match self {
            Reply::Frame(r) => r.pretty(),
            Reply::Closed => "<connection closed>\n".into(),
            Reply::Timeout => "<no reply before timeout>\n".into(),
        }
    }
}

/// Encode a command as a RESP2 multibulk request.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    encode_command(args)
}

/// A blocking client connection with bounded reads.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    pub port: u16,
}

impl Conn {
    pub fn connect(port: u16) -> std::io::Result<Conn> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        Conn::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(3))?)
    }

    /// A connection over a stream opened elsewhere (e.g. inside a network
    /// namespace, where the socket stays after the opening thread is gone).
    pub fn from_stream(stream: TcpStream) -> std::io::Result<Conn> {
        let port = stream.peer_addr()?.port();
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::GENEROUS),
            port,
        })
    }

    /// Connect or panic with a clear message.
    pub fn open(port: u16) -> Conn {
        Conn::connect(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
    }

    /// Write raw bytes. Errors are returned (the peer may have closed).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send_raw(&encode(&a))
    }

    /// Read one full frame within `timeout`.
    pub fn read_reply(&mut self, timeout: Duration) -> Reply {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(v)) => return Reply::Frame(from_frame(v)),
                Err(e) => panic!(
                    "port {}: unparsable reply ({e}): {:?}",
                    self.port,
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(None) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Reply::Timeout;
            }
            let _ = self.stream.set_read_timeout(Some(deadline - now));
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Reply::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Reply::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Reply::Closed,
            }
        }
    }

    /// Read one frame or panic with what happened instead.
    pub fn read(&mut self) -> Resp {
        match self.read_reply(READ_TIMEOUT) {
            Reply::Frame(v) => v,
            other => panic!(
                "port {}: expected a reply, got {}",
                self.port,
                other.describe()
            ),
        }
    }

    /// Send a command and return its reply (panics on I/O failure or timeout).
    pub fn cmd(&mut self, args: &[&str]) -> Resp {
        if let Err(e) = self.send(args) {
            panic!("port {}: sending {args:?}: {e}", self.port);
        }
        match self.read_reply(READ_TIMEOUT) {
            Reply::Frame(v) => v,
            other => panic!(
                "port {}: no reply to {args:?}: {}",
                self.port,
                other.describe()
            ),
        }
    }

    /// Send a command; return the reply or the failure as a `Reply`.
    pub fn try_cmd(&mut self, args: &[&str], timeout: Duration) -> Reply {
        if self.send(args).is_err() {
            return Reply::Closed;
        }
        self.read_reply(timeout)
    }

    /// True if the server has closed this connection: a PING gets no
    /// answer but EOF/reset. (Cheaper than waiting for a read timeout.)
    pub fn closed_by_peer(&mut self) -> bool {
        if self.send_raw(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return true;
        }
        matches!(self.read_reply(Duration::from_secs(5)), Reply::Closed)
    }

    /// Close the sending side: the server reads end of file after what
    /// was sent.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Bytes received but not parsed yet (for diagnostics).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// A pub/sub message received on a subscription, any protocol.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub payload: String,
    /// Arrived as a RESP3 push frame (`>`), not an array.
    pub push: bool,
}

/// Extract a `message`/`pmessage` from a frame (RESP2 array or RESP3 push).
pub fn as_message(v: &Resp) -> Option<Message> {
    let items = v.items()?;
    let kind = items.first()?.as_str()?;
    match (kind.as_str(), items.len()) {
        ("message", 3) => Some(Message {
            channel: items[1].as_str()?,
            payload: items[2].as_str()?,
            push: matches!(v, Resp::Push(_)),
        }),
        ("pmessage", 4) => Some(Message {
            channel: items[2].as_str()?,
            payload: items[3].as_str()?,
            push: matches!(v, Resp::Push(_)),
        }),
        _ => None,
    }
}

impl Conn {
    /// Collect pub/sub messages until none arrived for `quiet` (bounded by
    /// `max`). Used to drain events after a scripted action, not to time them.
    pub fn drain_messages(&mut self, quiet: Duration, max: Duration) -> Vec<Message> {
        let deadline = Instant::now() + max;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            match self.read_reply(quiet) {
                Reply::Frame(v) => out.extend(as_message(&v)),
                Reply::Timeout | Reply::Closed => break,
            }
        }
        out
    }

    /// Wait for a pub/sub message on `channel` whose payload satisfies `pred`.
    /// Other messages are skipped (and returned in the panic text if nothing matched).
    pub fn wait_message(
        &mut self,
        channel: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Message, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no matching message on {channel:?} within {timeout:?}; seen: {seen:#?}"
                ));
            }
            match self.read_reply(deadline - now) {
                Reply::Frame(v) => {
                    if let Some(m) = as_message(&v) {
                        if m.channel == channel && pred(&m.payload) {
                            return Ok(m);
                        }
                        seen.push(format!("{} {}", m.channel, m.payload));
                    } else {
                        seen.push(v.pretty());
                    }
                }
                Reply::Timeout => {}
                Reply::Closed => {
                    return Err(format!(
                        "connection closed while waiting for {channel:?}; seen: {seen:#?}"
                    ))
                }
            }
        }
    }
}
