//! COMMAND / COMMAND INFO / COMMAND DOCS replies, from the command metadata
//! of redis-sentinel 7.0.15 captured once (RESP3 form) into `data/`. Like
//! Redis's own table generated from its JSON command files, this is static
//! data; the dispatch table in `table.rs` is checked against it by a test.

use std::sync::OnceLock;

use crate::resp::Frame;

static INFO_RAW: &[u8] = include_bytes!("data/command_info.resp3");
static DOCS_RAW: &[u8] = include_bytes!("data/command_docs.resp3");

fn info() -> &'static [Frame] {
    static V: OnceLock<Vec<Frame>> = OnceLock::new();
    V.get_or_init(|| match Frame::decode(INFO_RAW) {
        Ok((Frame::Array(items), _)) => items,
        _ => Vec::new(),
    })
}

fn docs() -> &'static [(Frame, Frame)] {
    static V: OnceLock<Vec<(Frame, Frame)>> = OnceLock::new();
    V.get_or_init(|| match Frame::decode(DOCS_RAW) {
        Ok((Frame::Map(pairs), _)) => pairs,
        _ => Vec::new(),
    })
}

fn name_of(info: &Frame) -> Option<&[u8]> {
    match info {
        Frame::Array(items) => match items.first() {
            Some(Frame::Bulk(n)) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

fn find_info<'a>(list: &'a [Frame], name: &[u8]) -> Option<&'a Frame> {
    for i in list {
        if name_of(i).is_some_and(|n| n.eq_ignore_ascii_case(name)) {
            return Some(i);
        }
        if let Frame::Array(items) = i {
            if let Some(Frame::Array(subs)) = items.get(9) {
                if let Some(f) = find_info(subs, name) {
                    return Some(f);
                }
            }
        }
    }
    None
}

/// `COMMAND` / `COMMAND INFO` with no names.
pub fn all_info() -> Frame {
    Frame::Array(info().to_vec())
}

/// `COMMAND INFO name` entry (`name` may be `container|sub`).
pub fn info_of(name: &[u8]) -> Option<Frame> {
    find_info(info(), name).cloned()
}

/// `COMMAND DOCS` with no names.
pub fn all_docs() -> Frame {
    Frame::Map(docs().to_vec())
}

fn find_docs<'a>(pairs: &'a [(Frame, Frame)], name: &[u8]) -> Option<&'a Frame> {
    for (k, v) in pairs {
        if matches!(k, Frame::Bulk(n) if n.eq_ignore_ascii_case(name)) {
            return Some(v);
        }
        if let Frame::Map(fields) = v {
            for (fk, fv) in fields {
                if matches!(fk, Frame::Bulk(n) if n == b"subcommands") {
                    if let Frame::Map(subs) = fv {
                        if let Some(d) = find_docs(subs, name) {
                            return Some(d);
                        }
                    }
                }
            }
        }
    }
    None
}

/// `COMMAND DOCS name` entry.
pub fn docs_of(name: &[u8]) -> Option<Frame> {
    find_docs(docs(), name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::table;

    #[test]
    fn embedded_data_encodes_like_the_real_server() {
        let mut wire = Vec::new();
        all_info().encode(2, &mut wire);
        assert_eq!(wire, include_bytes!("data/command_info.resp2").to_vec());
        let mut wire = Vec::new();
        all_docs().encode(2, &mut wire);
        assert_eq!(wire, include_bytes!("data/command_docs.resp2").to_vec());
        let mut wire = Vec::new();
        all_info().encode(3, &mut wire);
        assert_eq!(wire, INFO_RAW.to_vec());
    }

    #[test]
    fn table_agrees_with_command_info() {
        for r in table::all_ids() {
            let info = info_of(r.fullname().as_bytes()).expect("in COMMAND INFO");
            let Frame::Array(items) = info else {
                panic!("not an array")
            };
            assert_eq!(
                items.get(1),
                Some(&Frame::Integer(r.spec().arity as i64)),
                "{}",
                r.fullname()
            );
        }
        assert_eq!(all_info(), Frame::Array(info().to_vec()));
        assert!(docs_of(b"sentinel|myid").is_some());
        assert!(docs_of(b"nosuch").is_none());
        let ping = info_of(b"PING").unwrap().to_wire(2);
        assert_eq!(ping, b"*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n".to_vec());
    }
}
