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
    pub fn bulk_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
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
            Value::Simple(s) => line(out, b'+', s.as_bytes()),
            Value::Error(s) => line(out, b'-', s.as_bytes()),
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
            Value::Push(items) => {
                let tag = if proto >= 3 { b'>' } else { b'*' };
                line(out, tag, items.len().to_string().as_bytes());
                for v in items {
                    v.encode(proto, out);
                }
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
    fn nulls_per_protocol() {
        assert_eq!(Value::NullArray.to_wire(2), b"*-1\r\n");
        assert_eq!(Value::NullArray.to_wire(3), b"_\r\n");
        assert_eq!(Value::NullBulk.to_wire(2), b"$-1\r\n");
    }
}
