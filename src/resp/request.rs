//! Request framing: RESP2 multibulk and inline commands, exactly as Redis
//! 7.0's `processMultibulkBuffer` / `processInlineBuffer` accept them,
//! including their protocol errors.
//!
//! The parser is incremental: it consumes complete pieces from the
//! connection's buffer and keeps the partial multibulk between reads, so a
//! large pipelined request is never re-scanned. It never allocates from a
//! length announced by the peer (a `$536870912` header only raises the bar for
//! how many bytes must arrive), and the connection enforces an overall cap on
//! buffered request bytes (`client-query-buffer-limit`).

pub use crate::core::commands::string2ll;
use bytes::{Buf, BytesMut};

/// Longest inline command, and longest `*`/`$` header line (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Largest accepted bulk length header by default (proto-max-bulk-len, 512 MiB).
pub const MAX_BULK_LEN: i64 = 512 * 1024 * 1024;
/// Largest accepted multibulk count. Redis 7.0 accepts up to INT_MAX; we cap
/// at 1 Mi arguments, far beyond any Sentinel command.
pub const MAX_MULTIBULK_LEN: i64 = 1024 * 1024;
/// Before authentication Redis only accepts small requests.
const UNAUTH_MULTIBULK_MAX: i64 = 10;
const UNAUTH_BULK_MAX: i64 = 16384;
/// Memory accounted per received argument besides its bytes (a `Vec` header
/// plus allocator slack), like Redis's per-argv object overhead.
const ARG_OVERHEAD: usize = 32;

/// A protocol error: the reply is `-ERR Protocol error: <text>` and the
/// connection is closed after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
}

impl ProtocolError {
    /// The full error line (without `-` and CRLF).
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {self}")
    }
}

/// A multibulk request being received.
#[derive(Debug, Default)]
struct Partial {
    remaining: usize,
    args: Vec<Vec<u8>>,
    /// Bytes of the arguments received so far (for the memory cap).
    bytes: usize,
    /// Length of the bulk whose header was read, waiting for its data.
    bulk_len: Option<usize>,
}

/// Incremental request parser for one connection.
#[derive(Debug)]
pub struct RequestParser {
    partial: Option<Partial>,
    /// Largest bulk length accepted (`proto-max-bulk-len`).
    max_bulk: i64,
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::with_max_bulk(MAX_BULK_LEN)
    }
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser refusing bulk arguments longer than `max_bulk` bytes.
    pub fn with_max_bulk(max_bulk: i64) -> Self {
        RequestParser {
            partial: None,
            max_bulk,
        }
    }

    /// Bytes held by a partially received command (arguments already taken
    /// out of the buffer).
    pub fn pending_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.bytes)
    }

    /// Takes the next complete command from `buf`. `Ok(None)` means more data
    /// is needed. Empty commands (a blank inline line, `*0`, `*-1`) are
    /// skipped, as Redis does.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        authenticated: bool,
    ) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        loop {
            if self.partial.is_none() {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    match inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some(n) = header_line(buf, ProtocolError::TooBigMbulkCount)? else {
                    return Ok(None);
                };
                let n = match n {
                    Header::Value(v) if v <= MAX_MULTIBULK_LEN => v,
                    _ => return Err(ProtocolError::InvalidMultibulkLength),
                };
                if n > UNAUTH_MULTIBULK_MAX && !authenticated {
                    return Err(ProtocolError::UnauthenticatedMultibulkLength);
                }
                if n <= 0 {
                    continue;
                }
                self.partial = Some(Partial {
                    remaining: n as usize,
                    // Never trust the header for allocation.
                    args: Vec::with_capacity((n as usize).min(16)),
                    bytes: 0,
                    bulk_len: None,
                });
            }
            let Some(p) = self.partial.as_mut() else {
                continue;
            };
            while p.remaining > 0 {
                let len = match p.bulk_len {
                    Some(l) => l,
                    None => {
                        let Some(&first) = buf.first() else {
                            return Ok(None);
                        };
                        if first != b'$' {
                            // Redis checks the line is complete before complaining.
                            if !has_header_line(buf) {
                                if buf.len() > INLINE_MAX {
                                    return Err(ProtocolError::TooBigBulkCount);
                                }
                                return Ok(None);
                            }
                            return Err(ProtocolError::ExpectedDollar(printable(first)));
                        }
                        let Some(h) = header_line(buf, ProtocolError::TooBigBulkCount)? else {
                            return Ok(None);
                        };
                        let l = match h {
                            Header::Value(v) if (0..=self.max_bulk).contains(&v) => v,
                            _ => return Err(ProtocolError::InvalidBulkLength),
                        };
                        if l > UNAUTH_BULK_MAX && !authenticated {
                            return Err(ProtocolError::UnauthenticatedBulkLength);
                        }
                        let l = l as usize;
                        p.bulk_len = Some(l);
                        l
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                // Copied out, then skipped (a `split_to` would first turn the
                // buffer into a shared, reference-counted one).
                let arg = buf.get(..len).unwrap_or_default().to_vec();
                // Like Redis, the two bytes after the data are skipped unchecked.
                buf.advance(len + 2);
                // Count each argument's bookkeeping too, so a flood of empty
                // arguments is bounded by the same cap as large ones.
                p.bytes += arg.len() + ARG_OVERHEAD;
                p.args.push(arg);
                p.bulk_len = None;
                p.remaining -= 1;
            }
            let done = self.partial.take().map(|p| p.args).unwrap_or_default();
            return Ok(Some(done));
        }
    }
}

enum Header {
    Value(i64),
    Invalid,
}

fn has_header_line(buf: &[u8]) -> bool {
    match buf.iter().position(|&b| b == b'\r') {
        Some(cr) => buf.len() >= cr + 2,
        None => false,
    }
}

/// Reads a `*n` / `$n` line (Redis looks for `\r` and skips the next byte).
fn header_line(
    buf: &mut BytesMut,
    too_big: ProtocolError,
) -> Result<Option<Header>, ProtocolError> {
    let Some(cr) = buf.iter().position(|&b| b == b'\r') else {
        if buf.len() > INLINE_MAX {
            return Err(too_big);
        }
        return Ok(None);
    };
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    let v = string2ll(buf.get(1..cr).unwrap_or_default());
    buf.advance(cr + 2);
    Ok(Some(v.map_or(Header::Invalid, Header::Value)))
}

fn printable(b: u8) -> char {
    // Error lines cannot carry CR/LF.
    if b == b'\r' || b == b'\n' {
        ' '
    } else {
        char::from(b)
    }
}

/// An inline command: one line split like `sdssplitargs`.
fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut l = &line[..nl];
    if let Some(stripped) = l.strip_suffix(b"\r") {
        l = stripped;
    }
    split_args(l)
        .map(Some)
        .ok_or(ProtocolError::UnbalancedQuotes)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `sdssplitargs`: whitespace-separated words, `"..."` with `\xHH`, `\n`,
/// `\r`, `\t`, `\b`, `\a` and `\<c>` escapes, `'...'` with only `\'`; a closing
/// quote must be followed by a space or the end. `None` = unbalanced quotes.
/// Like the C code (a C string), a NUL byte ends the input.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
    let s = line.get(..end).unwrap_or_default();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < s.len() && is_space(at(i)) {
            i += 1;
        }
        if i >= s.len() {
            return Some(args);
        }
        let (mut inq, mut insq) = (false, false);
        let mut cur = Vec::new();
        loop {
            let c = at(i);
            if inq {
                if c == b'\\' && at(i + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex(at(i + 2)), hex(at(i + 3))) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(i + 1) != 0 {
                    cur.push(match at(i + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        o => o,
                    });
                    i += 2;
                } else if c == b'"' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else if insq {
                if c == b'\\' && at(i + 1) == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            i += 1;
                        }
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>, usize) {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match p.next(&mut buf, true) {
                Ok(Some(a)) => out.push(a),
                Ok(None) => return (out, None, buf.len()),
                Err(e) => return (out, Some(e), buf.len()),
            }
        }
    }

    fn words(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn inline_ping_and_stray_newline() {
        let (cmds, err, left) = parse_all(b"PING\r\n\n");
        assert_eq!(cmds, vec![words(&["PING"])]);
        assert_eq!((err, left), (None, 0));
        let (cmds, _, _) = parse_all(b"\r\n\r\n   \r\nping\n");
        assert_eq!(cmds, vec![words(&["ping"])]);
    }

    #[test]
    fn pipelined_mixed_forms() {
        let (cmds, err, _) = parse_all(
            b"*1\r\n$4\r\nPING\r\nPING hi\r\n*0\r\n*-1\r\n*2\r\n$4\r\necho\r\n$0\r\n\r\n",
        );
        assert_eq!(err, None);
        assert_eq!(
            cmds,
            vec![
                words(&["PING"]),
                words(&["PING", "hi"]),
                words(&["echo", ""])
            ]
        );
    }

    #[test]
    fn incremental_bytes() {
        let wire = b"*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in wire.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(c) = p.next(&mut buf, true).unwrap() {
                got.push(c);
            }
        }
        assert_eq!(got, vec![words(&["PING", "hello"])]);
    }

    #[test]
    fn crlf_after_bulk_is_skipped_unchecked() {
        let (cmds, _, _) = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n");
        assert_eq!(cmds.len(), 2);
    }

    #[test]
    fn protocol_errors_match_redis() {
        let e = |i: &[u8]| parse_all(i).1.map(|e| e.reply_text());
        assert_eq!(
            e(b"\"abc\r\n").as_deref(),
            Some("ERR Protocol error: unbalanced quotes in request")
        );
        assert_eq!(
            e(b"*2\r\nx\r\n").as_deref(),
            Some("ERR Protocol error: expected '$', got 'x'")
        );
        assert_eq!(
            e(b"*abc\r\n").as_deref(),
            Some("ERR Protocol error: invalid multibulk length")
        );
        assert_eq!(
            e(b"*1048577\r\n").as_deref(),
            Some("ERR Protocol error: invalid multibulk length")
        );
        assert_eq!(e(b"*1048576\r\n"), None);
        assert_eq!(
            e(b"*1\r\n$abc\r\n").as_deref(),
            Some("ERR Protocol error: invalid bulk length")
        );
        assert_eq!(
            e(b"*1\r\n$-1\r\n").as_deref(),
            Some("ERR Protocol error: invalid bulk length")
        );
        assert_eq!(
            e(b"*1\r\n$536870913\r\n").as_deref(),
            Some("ERR Protocol error: invalid bulk length")
        );
        assert_eq!(e(b"*1\r\n$536870912\r\n"), None);
        assert_eq!(
            e(b"*1\r\n$999999999999999999999\r\n").as_deref(),
            Some("ERR Protocol error: invalid bulk length")
        );
        let big = vec![b'a'; 70000];
        assert_eq!(
            e(&big).as_deref(),
            Some("ERR Protocol error: too big inline request")
        );
        let mut m = b"*".to_vec();
        m.extend_from_slice(&[b'1'; 70000]);
        assert_eq!(
            e(&m).as_deref(),
            Some("ERR Protocol error: too big mbulk count string")
        );
        let mut b = b"*1\r\n$".to_vec();
        b.extend_from_slice(&[b'1'; 70000]);
        assert_eq!(
            e(&b).as_deref(),
            Some("ERR Protocol error: too big bulk count string")
        );
        // A long inline line that does end is fine.
        let mut ok = b"ping ".to_vec();
        ok.extend_from_slice(&[b'a'; 65000]);
        ok.extend_from_slice(b"\r\n");
        assert_eq!(e(&ok), None);
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, false),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, false),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        assert_eq!(
            split_args(br#"ping "a\x41\n" 'b\n'"#),
            Some(words(&["ping", "aA\n", "b\\n"]))
        );
        assert_eq!(split_args(br#"ping "a"b"#), None);
        assert_eq!(split_args(br#"ping 'a\'b'"#), Some(words(&["ping", "a'b"])));
        assert_eq!(split_args(br#"ping 'abc"#), None);
        assert_eq!(split_args(br#"a"b c" d"#), Some(words(&["ab c", "d"])));
        assert_eq!(split_args(br#"a"b c"d"#), None);
        assert_eq!(split_args(b"  \t "), Some(vec![]));
        assert_eq!(split_args(b"a\0b c"), Some(words(&["a"])));
    }

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-12"), Some(-12));
        assert_eq!(string2ll(b"012"), None);
        assert_eq!(string2ll(b"+1"), None);
        assert_eq!(string2ll(b""), None);
        assert_eq!(string2ll(b"-0"), None);
        assert_eq!(string2ll(b"9223372036854775808"), None);
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"*$\r\n0123456789-\"' \\xa";
                data.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = parse_all(&data);
        }
    }
}
