//! A minimal RESP2 client used for the bench's control traffic: PINGs, INFO, SENTINEL queries and the
//! `PSUBSCRIBE *` event streams. The `redis` crate's pub/sub stream needs the `futures` traits, which are not a
//! dependency; a few dozen lines of parser keep the timing path simple. The Sentinel-aware writer uses the
//! `redis` crate (see writer.rs), as a real client would.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One RESP value.
#[derive(Debug, Clone)]
pub enum V {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Option<Vec<V>>),
}

impl V {
    /// Text of a simple/bulk string (lossy), `None` otherwise.
    pub fn text(&self) -> Option<String> {
        match self {
            V::Simple(s) => Some(s.clone()),
            V::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn items(&self) -> &[V] {
        match self {
            V::Arr(Some(v)) => v,
            _ => &[],
        }
    }

    /// A flat key/value array (SENTINEL MASTER) as pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let items = self.items();
        items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.text()?, v.text()?)),
                _ => None,
            })
            .collect()
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

pub struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Conn {
    pub async fn connect(port: u16, t: Duration) -> io::Result<Conn> {
        let s = tokio::time::timeout(t, TcpStream::connect(("127.0.0.1", port)))
            .await
            .map_err(|_| timed_out("connect"))??;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Conn {
            r: BufReader::new(r),
            w,
        })
    }

    pub async fn send(&mut self, args: &[&str]) -> io::Result<()> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf).await
    }

    pub async fn read(&mut self) -> io::Result<V> {
        read_value(&mut self.r).await
    }

    /// Sends one command and reads one reply, both under `t`.
    pub async fn call(&mut self, args: &[&str], t: Duration) -> io::Result<V> {
        tokio::time::timeout(t, async {
            self.send(args).await?;
            self.read().await
        })
        .await
        .map_err(|_| timed_out("reply"))?
    }
}

/// Connects, sends one command, reads one reply; everything under `t`.
pub async fn call_once(port: u16, args: &[&str], t: Duration) -> io::Result<V> {
    tokio::time::timeout(t, async {
        let mut c = Conn::connect(port, t).await?;
        c.call(args, t).await
    })
    .await
    .map_err(|_| timed_out("call"))?
}

async fn read_line(r: &mut BufReader<OwnedReadHalf>) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

type ReadFut<'a> = Pin<Box<dyn Future<Output = io::Result<V>> + Send + 'a>>;

fn read_value(r: &mut BufReader<OwnedReadHalf>) -> ReadFut<'_> {
    Box::pin(async move {
        let line = read_line(r).await?;
        let (kind, rest) = match line.char_indices().nth(1) {
            Some((i, _)) => (line.as_bytes().first().copied(), &line[i..]),
            None => (line.as_bytes().first().copied(), ""),
        };
        match kind {
            Some(b'+') => Ok(V::Simple(rest.to_string())),
            Some(b'-') => Ok(V::Err(rest.to_string())),
            Some(b':') => Ok(V::Int(rest.parse().map_err(|_| bad("integer"))?)),
            Some(b'$') => {
                let n: i64 = rest.parse().map_err(|_| bad("bulk length"))?;
                if n < 0 {
                    return Ok(V::Bulk(None));
                }
                let n = usize::try_from(n).map_err(|_| bad("bulk length"))?;
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(n);
                Ok(V::Bulk(Some(buf)))
            }
            Some(b'*') | Some(b'>') => {
                let n: i64 = rest.parse().map_err(|_| bad("array length"))?;
                if n < 0 {
                    return Ok(V::Arr(None));
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(read_value(r).await?);
                }
                Ok(V::Arr(Some(v)))
            }
            _ => Err(bad("unknown RESP type")),
        }
    })
}
