//! The RESP frame and its encoding, for both protocol versions.
//!
//! Every reply the daemon sends is built as a [`Frame`] and encoded for the
//! client's protocol (2 or 3) at write time, so command code never thinks about
//! the wire version: a `Map` becomes a flat array in RESP2, nulls become `$-1` /
//! `*-1` in RESP2 and `_` in RESP3, a `Push` becomes a plain array in RESP2.
//! Decoded replies (see `reply`) use the same type, with the variants that
//! tell the wire forms apart (`Null` for RESP3 `_`, `Boolean`, `BigNumber`).

/// A reply, a pushed message or a request, in protocol-neutral form.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`
    Simple(String),
    /// `-CODE text` (the full line after `-`, e.g. `ERR unknown command ...`).
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$len\r\nbytes`
    Bulk(Vec<u8>),
    /// `*n` elements
    Array(Vec<Frame>),
    /// `$-1` in RESP2, `_` in RESP3.
    NullBulk,
    /// `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// RESP3 `_` as received; `$-1` in RESP2.
    Null,
    /// `#t` / `#f` in RESP3, `:1` / `:0` in RESP2.
    Boolean(bool),
    /// `(digits` in RESP3, a bulk string in RESP2.
    BigNumber(String),
    /// `%n` in RESP3, a flat `*2n` array in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// `>n` in RESP3, `*n` in RESP2 (pub/sub messages and confirmations).
    Push(Vec<Frame>),
    /// `~n` in RESP3, `*n` in RESP2 (COMMAND INFO flags, ACL GETUSER flags).
    Set(Vec<Frame>),
    /// `=len\r\nfmt:text` in RESP3 (format is 3 bytes, e.g. `txt`), a plain
    /// bulk string in RESP2 (CLIENT LIST / CLIENT INFO).
    Verbatim([u8; 3], Vec<u8>),
    /// `,d` in RESP3, a bulk string in RESP2, printed with `%.17g` as Redis
    /// 7.0 does (e.g. ACL LOG `age-seconds` `0.35999999999999999`).
    Double(f64),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }
    pub fn simple(s: impl Into<String>) -> Frame {
        Frame::Simple(s.into())
    }
    pub fn error(s: impl Into<String>) -> Frame {
        Frame::Error(s.into())
    }
    pub fn bulk(s: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(s.as_ref().to_vec())
    }
    /// A map whose keys and values are all bulk strings, the shape of every
    /// Sentinel instance description.
    pub fn bulk_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Frame {
        Frame::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Frame::bulk(k), Frame::bulk(v)))
                .collect(),
        )
    }

    /// Appends the wire form of this value for protocol `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut Vec<u8>) {
        match self {
            // A CR or LF inside a status/error line would break the framing;
            // Redis turns them into spaces.
            Frame::Simple(s) => line(out, b'+', &one_line(s)),
            Frame::Error(s) => line(out, b'-', &one_line(s)),
            Frame::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Frame::Bulk(b) => bulk(out, b),
            Frame::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for v in items {
                    v.encode(proto, out);
                }
            }
            Frame::NullBulk if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Frame::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Frame::Null if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::Boolean(b) if proto >= 3 => line(out, b'#', if *b { b"t" } else { b"f" }),
            Frame::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
            Frame::BigNumber(n) if proto >= 3 => line(out, b'(', n.as_bytes()),
            Frame::BigNumber(n) => bulk(out, n.as_bytes()),
            Frame::Map(pairs) => {
                if proto >= 3 {
                    line(out, b'%', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Push(items) | Frame::Set(items) => {
                let tag = match (self, proto >= 3) {
                    (Frame::Push(_), true) => b'>',
                    (Frame::Set(_), true) => b'~',
                    _ => b'*',
                };
                line(out, tag, items.len().to_string().as_bytes());
                for v in items {
                    v.encode(proto, out);
                }
            }
            Frame::Verbatim(fmt, text) if proto >= 3 => {
                line(
                    out,
                    b'=',
                    (text.len() + fmt.len() + 1).to_string().as_bytes(),
                );
                out.extend_from_slice(fmt);
                out.push(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if proto >= 3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Frame::Verbatim(_, text) => bulk(out, text),
        }
    }

    /// A request as clients send it: an array of bulk strings.
    pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Frame {
        Frame::Array(args.iter().map(Frame::bulk).collect())
    }

    /// Text of a simple string, error, bulk or verbatim string (lossy).
    pub fn text(&self) -> Option<String> {
        match self {
            Frame::Simple(s) | Frame::Error(s) => Some(s.clone()),
            Frame::Bulk(b) | Frame::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// A map, or a RESP2 flat array of field/value pairs (SENTINEL MASTER),
    /// as text pairs; pairs whose key or value is not text are skipped.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let text_pair = |k: &Frame, v: &Frame| Some((k.text()?, v.text()?));
        match self {
            Frame::Map(m) => m.iter().filter_map(|(k, v)| text_pair(k, v)).collect(),
            _ => self
                .items()
                .chunks(2)
                .filter_map(|c| match c {
                    [k, v] => text_pair(k, v),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Elements of an array, set or push (empty for anything else).
    pub fn items(&self) -> &[Frame] {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => v,
            _ => &[],
        }
    }

    /// Convenience for tests and logs.
    pub fn to_wire(&self, proto: u8) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(proto, &mut out);
        out
    }
}

/// C's `%.17g`, the format Redis uses for doubles.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for any %.17g output and snprintf
    // never writes past the given size; the format takes exactly one double.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%.17g".as_ptr(),
            d,
        )
    };
    let n = usize::try_from(n).unwrap_or(0).min(buf.len() - 1);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn one_line(s: &str) -> Vec<u8> {
    s.bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect()
}

fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    line(out, b'$', data.len().to_string().as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_flat_in_resp2_and_a_map_in_resp3() {
        let v = Frame::bulk_map([("port", "6379")]);
        assert_eq!(v.to_wire(2), b"*2\r\n$4\r\nport\r\n$4\r\n6379\r\n");
        assert_eq!(v.to_wire(3), b"%1\r\n$4\r\nport\r\n$4\r\n6379\r\n");
    }

    #[test]
    fn sets_and_verbatim_per_protocol() {
        let v = Frame::Set(vec![Frame::simple("fast")]);
        assert_eq!(v.to_wire(2), b"*1\r\n+fast\r\n");
        assert_eq!(v.to_wire(3), b"~1\r\n+fast\r\n");
        let v = Frame::Verbatim(*b"txt", b"id=1\n".to_vec());
        assert_eq!(v.to_wire(2), b"$5\r\nid=1\n\r\n");
        assert_eq!(v.to_wire(3), b"=9\r\ntxt:id=1\n\r\n");
        assert_eq!(Frame::Double(0.0).to_wire(3), b",0\r\n");
        assert_eq!(Frame::Double(0.001).to_wire(2), b"$5\r\n0.001\r\n");
        assert_eq!(format_double(0.36), "0.35999999999999999");
    }

    #[test]
    fn error_lines_never_carry_crlf() {
        assert_eq!(Frame::error("ERR a\r\nb").to_wire(2), b"-ERR a  b\r\n");
    }

    #[test]
    fn resp3_only_types_degrade_in_resp2() {
        assert_eq!(Frame::Boolean(true).to_wire(3), b"#t\r\n");
        assert_eq!(Frame::Boolean(false).to_wire(2), b":0\r\n");
        assert_eq!(Frame::BigNumber("12".into()).to_wire(2), b"$2\r\n12\r\n");
        assert_eq!(Frame::Null.to_wire(2), b"$-1\r\n");
        assert_eq!(
            Frame::command(&["PING", "x"]).to_wire(2),
            b"*2\r\n$4\r\nPING\r\n$1\r\nx\r\n"
        );
    }

    #[test]
    fn nulls_per_protocol() {
        assert_eq!(Frame::NullArray.to_wire(2), b"*-1\r\n");
        assert_eq!(Frame::NullArray.to_wire(3), b"_\r\n");
        assert_eq!(Frame::NullBulk.to_wire(2), b"$-1\r\n");
    }
}
