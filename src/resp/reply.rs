//! Reading replies: an incremental decoder of RESP2 and RESP3 frames with
//! limits, and [`FrameReader`], which reads frames from an async stream.
//!
//! The decoder takes complete pieces (a line, a bulk with its data) from the
//! front of the caller's buffer as they arrive and keeps the aggregates being
//! filled on a stack, so a large reply is never re-scanned and a frame split
//! across many reads costs no more than one in a single read. It never
//! allocates from a length announced by the peer: every announced length and
//! count is checked against [`Limits`] first, and the bytes of one frame are
//! bounded as a whole. Attributes (`|`) are read and dropped, as clients that
//! do not ask for them do.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::Frame;

/// Bounds on what one frame may announce or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (simple string, error, number, header) without its CRLF.
    pub max_line: usize,
    /// Largest bulk, verbatim or blob error length.
    pub max_bulk: usize,
    /// Most elements (pairs count twice) of one aggregate.
    pub max_elements: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
    /// Most bytes one frame may take on the wire.
    pub max_frame: usize,
}

impl Limits {
    /// Replies from Redis nodes and peer daemons: a Sentinel reads INFO, PING
    /// and short arrays, never anything near these bounds.
    pub const LINK: Limits = Limits {
        max_line: 64 * 1024,
        max_bulk: 64 * 1024 * 1024,
        max_elements: 64 * 1024,
        max_depth: 8,
        max_frame: 64 * 1024 * 1024,
    };
    /// Trusted data and test peers: Redis's own protocol bounds.
    pub const GENEROUS: Limits = Limits {
        max_line: 64 * 1024,
        max_bulk: 512 * 1024 * 1024,
        max_elements: 1024 * 1024,
        max_depth: 64,
        max_frame: 1024 * 1024 * 1024,
    };
}

/// Why the bytes received are not a valid frame (the stream cannot be read
/// further: framing is lost).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("incomplete reply")]
    Incomplete,
    #[error("unknown RESP type byte 0x{0:02x}")]
    UnknownType(u8),
    #[error("malformed {0} line")]
    BadLine(&'static str),
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("bulk of {0} bytes over the limit")]
    BulkTooLarge(i64),
    #[error("aggregate of {0} elements over the limit")]
    TooManyElements(i64),
    #[error("reply nested too deep")]
    TooDeep,
    #[error("reply larger than {0} bytes")]
    FrameTooLarge(usize),
    #[error("bulk data not followed by CRLF")]
    MissingCrlf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

/// An aggregate being filled.
#[derive(Debug)]
struct Partial {
    kind: AggKind,
    want: usize,
    items: Vec<Frame>,
}

impl Partial {
    fn finish(self) -> Frame {
        match self.kind {
            AggKind::Array => Frame::Array(self.items),
            AggKind::Set => Frame::Set(self.items),
            AggKind::Push => Frame::Push(self.items),
            AggKind::Map | AggKind::Attribute => {
                let mut pairs = Vec::with_capacity(self.items.len() / 2);
                let mut it = self.items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Frame::Map(pairs)
            }
        }
    }
}

/// One piece taken from the buffer.
enum Piece {
    Frame(Frame),
    Open(AggKind, usize),
}

/// Incremental decoder of one stream of replies.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    stack: Vec<Partial>,
    /// Bytes of the current frame consumed so far.
    used: usize,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            stack: Vec::new(),
            used: 0,
        }
    }

    /// Takes the next complete frame from the front of `buf`. `Ok(None)`:
    /// more bytes are needed (what was complete has been consumed and is
    /// kept here). After an error the stream's framing is lost.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            let before = buf.len();
            let piece = self.piece(buf)?;
            self.used += before - buf.len();
            if self.used > self.limits.max_frame {
                return Err(DecodeError::FrameTooLarge(self.limits.max_frame));
            }
            let mut frame = match piece {
                None => return Ok(None),
                Some(Piece::Open(AggKind::Attribute, 0)) => continue,
                Some(Piece::Open(kind, n)) if n > 0 => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(DecodeError::TooDeep);
                    }
                    self.stack.push(Partial {
                        kind,
                        want: n,
                        // Never trust the header for allocation.
                        items: Vec::with_capacity(n.min(16)),
                    });
                    continue;
                }
                Some(Piece::Open(kind, _)) => Partial {
                    kind,
                    want: 0,
                    items: Vec::new(),
                }
                .finish(),
                Some(Piece::Frame(f)) => f,
            };
            // Fold the finished frame into the aggregates it completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    self.used = 0;
                    return Ok(Some(frame));
                };
                top.items.push(frame);
                if top.items.len() < top.want {
                    break;
                }
                let Some(done) = self.stack.pop() else {
                    break;
                };
                if done.kind == AggKind::Attribute {
                    // Metadata about the next frame: dropped.
                    break;
                }
                frame = done.finish();
            }
        }
    }

    /// One scalar or aggregate header, if complete.
    fn piece(&self, buf: &mut BytesMut) -> Result<Option<Piece>, DecodeError> {
        let Some(&tag) = buf.first() else {
            return Ok(None);
        };
        let Some(len) = line_len(buf, self.limits.max_line)? else {
            return Ok(None);
        };
        let body = buf.get(1..len).unwrap_or_default();
        let text = || String::from_utf8_lossy(body).into_owned();
        let piece = match tag {
            b'+' => Piece::Frame(Frame::Simple(text())),
            b'-' => Piece::Frame(Frame::Error(text())),
            b':' => Piece::Frame(Frame::Integer(int(body, "integer")?)),
            b'_' => Piece::Frame(Frame::Null),
            b'#' => match body {
                b"t" => Piece::Frame(Frame::Boolean(true)),
                b"f" => Piece::Frame(Frame::Boolean(false)),
                _ => return Err(DecodeError::BadLine("boolean")),
            },
            b',' => Piece::Frame(Frame::Double(
                std::str::from_utf8(body)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or(DecodeError::BadLine("double"))?,
            )),
            b'(' => Piece::Frame(Frame::BigNumber(text())),
            b'$' | b'=' | b'!' => return self.blob(buf, tag, len),
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = int(body, "aggregate length")?;
                let kind = match tag {
                    b'*' => AggKind::Array,
                    b'~' => AggKind::Set,
                    b'>' => AggKind::Push,
                    b'%' => AggKind::Map,
                    _ => AggKind::Attribute,
                };
                let pairs = matches!(kind, AggKind::Map | AggKind::Attribute);
                if n < 0 {
                    buf.advance(len + 2);
                    return Ok(Some(Piece::Frame(Frame::NullArray)));
                }
                let count = if pairs { n.saturating_mul(2) } else { n };
                if count > self.limits.max_elements as i64 {
                    return Err(DecodeError::TooManyElements(n));
                }
                Piece::Open(kind, count as usize)
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        buf.advance(len + 2);
        Ok(Some(piece))
    }

    /// A bulk string, verbatim string or blob error: header and data are
    /// taken together, once all of it has arrived.
    fn blob(&self, buf: &mut BytesMut, tag: u8, len: usize) -> Result<Option<Piece>, DecodeError> {
        let n = int(buf.get(1..len).unwrap_or_default(), "bulk length")?;
        if n < 0 {
            buf.advance(len + 2);
            return Ok(Some(Piece::Frame(Frame::NullBulk)));
        }
        if n > self.limits.max_bulk as i64 {
            return Err(DecodeError::BulkTooLarge(n));
        }
        let n = n as usize;
        let start = len + 2;
        if buf.len() < start + n + 2 {
            return Ok(None);
        }
        if buf.get(start + n..start + n + 2) != Some(b"\r\n".as_slice()) {
            return Err(DecodeError::MissingCrlf);
        }
        buf.advance(start);
        let data = buf.split_to(n).to_vec();
        buf.advance(2);
        Ok(Some(Piece::Frame(match tag {
            b'$' => Frame::Bulk(data),
            b'!' => Frame::Error(String::from_utf8_lossy(&data).into_owned()),
            _ => {
                let mut fmt = *b"txt";
                if let (Some(f), Some(b':')) = (data.get(..3), data.get(3)) {
                    fmt.copy_from_slice(f);
                }
                Frame::Verbatim(fmt, data.get(4..).unwrap_or_default().to_vec())
            }
        })))
    }
}

/// Length of the line at the front of `buf` (up to its CRLF), if complete.
fn line_len(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    match buf.iter().take(max + 2).position(|&b| b == b'\n') {
        Some(nl) if nl > 0 && buf.get(nl - 1) == Some(&b'\r') => Ok(Some(nl - 1)),
        Some(_) => Err(DecodeError::BadLine("unterminated")),
        None if buf.len() > max + 1 => Err(DecodeError::LineTooLong(max)),
        None => Ok(None),
    }
}

fn int(body: &[u8], what: &'static str) -> Result<i64, DecodeError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::BadLine(what))
}

impl Frame {
    /// Decodes one frame from the start of `buf`, returning it and the number
    /// of bytes it used (generous limits: for trusted data such as the
    /// embedded command docs, and for tests).
    pub fn decode(buf: &[u8]) -> Result<(Frame, usize), DecodeError> {
        let mut b = BytesMut::from(buf);
        match Decoder::new(Limits::GENEROUS).decode(&mut b)? {
            Some(f) => Ok((f, buf.len() - b.len())),
            None => Err(DecodeError::Incomplete),
        }
    }
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads frames from an async byte stream through its own buffer, so that
/// replies to pipelined commands are read in order with few syscalls. The
/// caller bounds each read in time; the bytes buffered are bounded by the
/// decoder's limits.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: Decoder,
}

/// Room made for one read: many PONGs or hello messages, or a good part of
/// an INFO reply.
const READ_CHUNK: usize = 4 * 1024;

/// The first read into an empty buffer: replies and messages up to this
/// size (PONGs, hellos) take one allocation of their own size.
const FIRST_READ: usize = 512;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limits: Limits) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            decoder: Decoder::new(limits),
        }
    }

    /// The next frame; [`ReadError::Closed`] when the peer closed first.
    /// Cancel-safe: bytes read are kept in the reader's buffer, so it can be
    /// raced against other work in a `select!`.
    pub async fn read(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf)? {
                // A daemon keeps a reader per link (hundreds with many
                // masters) and a link is idle between a few short replies a
                // second: once everything read is decoded the buffer is given
                // back, so an idle link holds none (a read costs one
                // allocation).
                if self.buf.is_empty() {
                    self.buf = BytesMut::new();
                }
                return Ok(f);
            }
            if self.buf.is_empty() {
                // Nothing buffered: the link waits (most of its life) with a
                // small buffer of its own future's state, not a heap chunk,
                // and allocates only what arrived (a PONG, a hello).
                let mut first = [0u8; FIRST_READ];
                let n = self.inner.read(&mut first).await?;
                if n == 0 {
                    return Err(ReadError::Closed);
                }
                self.buf.extend_from_slice(&first[..n]);
                continue;
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// The stream, e.g. to write requests on it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Encodes one command as a RESP2 multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    write_command(&mut out, args);
    out
}

/// Appends one command as a RESP2 multibulk request to `out`, with no
/// intermediate frame (the links write several per second per node).
pub fn write_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    header(out, b'*', args.len());
    for a in args {
        let a = a.as_ref();
        header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(wire: &[u8], limits: Limits) -> Result<Vec<Frame>, DecodeError> {
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn resp3_roundtrips() {
        let wire = b"%2\r\n$1\r\na\r\n~1\r\n+x\r\n$1\r\nb\r\n*2\r\n:-3\r\n_\r\n";
        let (v, used) = Frame::decode(wire).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(v.to_wire(3), wire.to_vec());
        assert_eq!(Frame::decode(b"*2\r\n:1\r\n"), Err(DecodeError::Incomplete));
        assert_eq!(Frame::decode(b"?\r\n"), Err(DecodeError::UnknownType(b'?')));
    }

    #[test]
    fn every_type_and_attributes() {
        let wire = b"#t\r\n,1.5\r\n(123\r\n!3\r\nERR\r\n=8\r\nmkd:# hi\r\n|1\r\n+k\r\n+v\r\n:7\r\n$-1\r\n*-1\r\n*0\r\n";
        assert_eq!(
            all(wire, Limits::LINK).unwrap(),
            vec![
                Frame::Boolean(true),
                Frame::Double(1.5),
                Frame::BigNumber("123".into()),
                Frame::Error("ERR".into()),
                Frame::Verbatim(*b"mkd", b"# hi".to_vec()),
                Frame::Integer(7),
                Frame::NullBulk,
                Frame::NullArray,
                Frame::Array(vec![]),
            ]
        );
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let wire = b"*3\r\n$9\r\nsubscribe\r\n$18\r\n__sentinel__:hello\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n";
        let whole = all(wire, Limits::LINK).unwrap();
        let mut d = Decoder::new(Limits::LINK);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, whole);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn limits_refuse_before_allocating() {
        let tight = Limits {
            max_line: 16,
            max_bulk: 8,
            max_elements: 4,
            max_depth: 2,
            max_frame: 48,
        };
        let e = |w: &[u8]| all(w, tight).unwrap_err();
        assert_eq!(e(b"$9\r\n"), DecodeError::BulkTooLarge(9));
        assert_eq!(e(b"*5\r\n"), DecodeError::TooManyElements(5));
        assert_eq!(e(b"%3\r\n"), DecodeError::TooManyElements(3));
        assert_eq!(e(b"*1\r\n*1\r\n*1\r\n"), DecodeError::TooDeep);
        assert_eq!(
            e(b"+aaaaaaaaaaaaaaaaaaaaaaaa"),
            DecodeError::LineTooLong(16)
        );
        assert_eq!(e(b"$2\r\nabcd\r\n"), DecodeError::MissingCrlf);
        assert_eq!(e(b"+x\n"), DecodeError::BadLine("unterminated"));
        assert_eq!(e(b":x\r\n"), DecodeError::BadLine("integer"));
        let long =
            b"*4\r\n$8\r\naaaaaaaa\r\n$8\r\naaaaaaaa\r\n$8\r\naaaaaaaa\r\n$8\r\naaaaaaaa\r\n";
        assert_eq!(e(long), DecodeError::FrameTooLarge(48));
    }

    #[tokio::test]
    async fn reader_reads_pipelined_replies_and_reports_eof() {
        let data: &[u8] = b"+OK\r\n-NOAUTH Authentication required.\r\n$5\r\nhello\r\n";
        let mut r = FrameReader::new(data, Limits::LINK);
        assert_eq!(r.read().await.unwrap(), Frame::simple("OK"));
        assert_eq!(
            r.read().await.unwrap(),
            Frame::error("NOAUTH Authentication required.")
        );
        assert_eq!(r.read().await.unwrap(), Frame::bulk("hello"));
        assert!(matches!(r.read().await, Err(ReadError::Closed)));
        let mut r = FrameReader::new(&b"$5\r\nab"[..], Limits::LINK);
        assert!(matches!(r.read().await, Err(ReadError::Closed)));
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(
            encode_command(&[&b"CLIENT"[..], b"SETNAME", b"x"]),
            b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n".to_vec()
        );
        let long = "y".repeat(1234);
        let mut out = Vec::new();
        write_command(&mut out, &["PUBLISH", "", long.as_str()]);
        let mut expected = Vec::new();
        Frame::command(&["PUBLISH", "", long.as_str()]).encode(2, &mut expected);
        assert_eq!(out, expected);
    }
}
