//! RESP values and their encoding, for both protocol versions.
//!
//! Every reply the daemon sends is built as a [`Value`] and encoded for the
//! client's protocol (2 or 3) at write time, so command code never thinks about
//! the wire version: a `Map` becomes a flat array in RESP2, nulls become `$-1` /
//! `*-1` in RESP2 and `_` in RESP3, a `Push` becomes a plain array in RESP2.

/// A reply (or a pushed message) in protocol-neutral form.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`
    Simple(String),
    /// `-CODE text` (the full line after `-`, e.g. `ERR unknown command ...`).
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$len\r\nbytes`
    Bulk(Vec<u8>),
    /// `*n` elements
    Array(Vec<Value>),
    /// `$-1` in RESP2, `_` in RESP3.
    NullBulk,
    /// `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `%n` in RESP3, a flat `*2n` array in RESP2.
    Map(Vec<(Value, Value)>),
    /// `>n` in RESP3, `*n` in RESP2 (pub/sub messages and confirmations).
    Push(Vec<Value>),
    /// `~n` in RESP3, `*n` in RESP2 (COMMAND INFO flags, ACL GETUSER flags).
    Set(Vec<Value>),
    /// `=len\r\nfmt:text` in RESP3 (format is 3 bytes, e.g. `txt`), a plain
    /// bulk string in RESP2 (CLIENT LIST / CLIENT INFO).
    Verbatim(&'static str, Vec<u8>),
    /// `,d` in RESP3, a bulk string in RESP2, printed with `%.17g` as Redis
    /// 7.0 does (e.g. ACL LOG `age-seconds` `0.35999999999999999`).
    Double(f64),
}

impl Value {
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }
    pub fn simple(s: impl Into<String>) -> Value {
        Value::Simple(s.into())
    }
    pub fn error(s: impl Into<String>) -> Value {
        Value::Error(s.into())
    }
    pub fn bulk(s: impl AsRef<[u8]>) -> Value {
        Value::Bulk(s.as_ref().to_vec())
    }
    /// A map whose keys and values are all bulk strings, the shape of every
    /// Sentinel instance description.
    pub fn bulk_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::bulk(k), Value::bulk(v)))
                .collect(),
        )
    }

    /// Appends the wire form of this value for protocol `proto` (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut Vec<u8>) {
        match self {
            // A CR or LF inside a status/error line would break the framing;
            // Redis turns them into spaces.
            Value::Simple(s) => line(out, b'+', &one_line(s)),
            Value::Error(s) => line(out, b'-', &one_line(s)),
            Value::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Value::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for v in items {
                    v.encode(proto, out);
                }
            }
            Value::NullBulk if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Value::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Value::NullArray if proto >= 3 => out.extend_from_slice(b"_\r\n"),
            Value::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Map(pairs) => {
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
            Value::Push(items) | Value::Set(items) => {
                let tag = match (self, proto >= 3) {
                    (Value::Push(_), true) => b'>',
                    (Value::Set(_), true) => b'~',
                    _ => b'*',
                };
                line(out, tag, items.len().to_string().as_bytes());
                for v in items {
                    v.encode(proto, out);
                }
            }
            Value::Verbatim(fmt, text) if proto >= 3 => {
                line(
                    out,
                    b'=',
                    (text.len() + fmt.len() + 1).to_string().as_bytes(),
                );
                out.extend_from_slice(fmt.as_bytes());
                out.push(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Value::Double(d) => {
                let text = format_double(*d);
                if proto >= 3 {
                    line(out, b',', text.as_bytes());
                } else {
                    line(out, b'$', text.len().to_string().as_bytes());
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            Value::Verbatim(_, text) => {
                line(out, b'$', text.len().to_string().as_bytes());
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Convenience for tests and logs.
    pub fn to_wire(&self, proto: u8) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(proto, &mut out);
        out
    }
}

/// Why a byte string is not one complete RESP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("incomplete reply")]
    Incomplete,
    #[error("malformed reply at byte {0}")]
    Malformed(usize),
}

impl Value {
    /// Decodes one reply (RESP2 or RESP3) from the start of `buf`, returning it
    /// and the number of bytes it used. Used for the embedded command docs and
    /// by tests that compare replies; requests go through `server::parse`.
    pub fn decode(buf: &[u8]) -> Result<(Value, usize), DecodeError> {
        let mut pos = 0;
        let v = decode_at(buf, &mut pos, 0)?;
        Ok((v, pos))
    }
}

fn decode_line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let rest = buf.get(*pos..).ok_or(DecodeError::Incomplete)?;
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(DecodeError::Incomplete)?;
    let l = &rest[..end];
    *pos += end + 2;
    Ok(l)
}

fn decode_int(l: &[u8], at: usize) -> Result<i64, DecodeError> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::Malformed(at))
}

fn decode_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, DecodeError> {
    // Bounded nesting: the decoder never recurses more than a reply can sensibly nest.
    if depth > 64 {
        return Err(DecodeError::Malformed(*pos));
    }
    let start = *pos;
    let l = decode_line(buf, pos)?;
    let (&tag, body) = l.split_first().ok_or(DecodeError::Malformed(start))?;
    let text = || String::from_utf8_lossy(body).into_owned();
    Ok(match tag {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Integer(decode_int(body, start)?),
        b'_' => Value::NullBulk,
        b',' => Value::Double(
            std::str::from_utf8(body)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(DecodeError::Malformed(start))?,
        ),
        b'$' | b'=' => {
            let n = decode_int(body, start)?;
            if n < 0 {
                return Ok(Value::NullBulk);
            }
            let n = n as usize;
            let data = buf
                .get(*pos..*pos + n)
                .ok_or(DecodeError::Incomplete)?
                .to_vec();
            if buf
                .get(*pos + n..*pos + n + 2)
                .ok_or(DecodeError::Incomplete)?
                != b"\r\n"
            {
                return Err(DecodeError::Malformed(*pos + n));
            }
            *pos += n + 2;
            if tag == b'=' {
                let payload = data.get(4..).unwrap_or_default().to_vec();
                Value::Verbatim("txt", payload)
            } else {
                Value::Bulk(data)
            }
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = decode_int(body, start)?;
            if n < 0 {
                return Ok(Value::NullArray);
            }
            let count = if tag == b'%' { n * 2 } else { n };
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            match tag {
                b'~' => Value::Set(items),
                b'>' => Value::Push(items),
                b'%' => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Value::Map(pairs)
                }
                _ => Value::Array(items),
            }
        }
        _ => return Err(DecodeError::Malformed(start)),
    })
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
        let v = Value::bulk_map([("port", "6379")]);
        assert_eq!(v.to_wire(2), b"*2\r\n$4\r\nport\r\n$4\r\n6379\r\n");
        assert_eq!(v.to_wire(3), b"%1\r\n$4\r\nport\r\n$4\r\n6379\r\n");
    }

    #[test]
    fn sets_and_verbatim_per_protocol() {
        let v = Value::Set(vec![Value::simple("fast")]);
        assert_eq!(v.to_wire(2), b"*1\r\n+fast\r\n");
        assert_eq!(v.to_wire(3), b"~1\r\n+fast\r\n");
        let v = Value::Verbatim("txt", b"id=1\n".to_vec());
        assert_eq!(v.to_wire(2), b"$5\r\nid=1\n\r\n");
        assert_eq!(v.to_wire(3), b"=9\r\ntxt:id=1\n\r\n");
        assert_eq!(Value::Double(0.0).to_wire(3), b",0\r\n");
        assert_eq!(Value::Double(0.001).to_wire(2), b"$5\r\n0.001\r\n");
        assert_eq!(format_double(0.36), "0.35999999999999999");
    }

    #[test]
    fn decode_roundtrips_resp3() {
        let wire = b"%2\r\n$1\r\na\r\n~1\r\n+x\r\n$1\r\nb\r\n*2\r\n:-3\r\n_\r\n";
        let (v, used) = Value::decode(wire).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(v.to_wire(3), wire.to_vec());
        assert_eq!(Value::decode(b"*2\r\n:1\r\n"), Err(DecodeError::Incomplete));
        assert!(matches!(
            Value::decode(b"?\r\n"),
            Err(DecodeError::Malformed(0))
        ));
    }

    #[test]
    fn error_lines_never_carry_crlf() {
        assert_eq!(Value::error("ERR a\r\nb").to_wire(2), b"-ERR a  b\r\n");
    }

    #[test]
    fn nulls_per_protocol() {
        assert_eq!(Value::NullArray.to_wire(2), b"*-1\r\n");
        assert_eq!(Value::NullArray.to_wire(3), b"_\r\n");
        assert_eq!(Value::NullBulk.to_wire(2), b"$-1\r\n");
    }
}
