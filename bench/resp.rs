//! The bench's control connections (PINGs, INFO, SENTINEL queries and the `PSUBSCRIBE *` event streams) on
//! the crate's RESP codec. The Sentinel-aware writer uses the `redis` crate (see writer.rs), as a real client
//! would.

use std::io;
use std::time::Duration;

use raftinel::resp::{encode_command, Frame, FrameReader, Limits, ReadError};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One RESP value.
pub type V = Frame;

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

fn read_error(e: ReadError) -> io::Error {
    match e {
        ReadError::Io(e) => e,
        ReadError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, "closed"),
        ReadError::Protocol(e) => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

pub struct Conn {
    r: FrameReader<OwnedReadHalf>,
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
            r: FrameReader::new(r, Limits::GENEROUS),
            w,
        })
    }

    pub async fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.w.write_all(&encode_command(args)).await
    }

    pub async fn read(&mut self) -> io::Result<V> {
        self.r.read().await.map_err(read_error)
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
