//! The replication history an RDB file carries: Redis writes its
//! replication id and offset as auxiliary fields (`repl-id`, `repl-offset`)
//! at the start of every RDB it saves with replication info (a master's, or
//! a connected replica's, `SAVE`, `BGSAVE`, and the save at `SHUTDOWN`).
//! `boot-redis` reads them before Redis starts, so it can tell whether the
//! data on the volume is the history the group recorded. Only the header
//! is read; a file that is absent, too short or not an RDB has no history.

use std::io::Read;
use std::path::Path;

/// What the auxiliary fields say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdbInfo {
    pub repl_id: Option<String>,
    pub repl_offset: Option<u64>,
}

const OP_AUX: u8 = 0xFA;
/// The most of a file the header scan reads (aux fields are small).
const MAX_HEADER: u64 = 64 * 1024;

/// Reads the aux fields of the RDB file at `path`; Ok(None) when there is
/// no file.
pub fn read(path: &Path) -> std::io::Result<Option<RdbInfo>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(MAX_HEADER).read_to_end(&mut buf)?;
    Ok(Some(parse(&buf)))
}

/// The aux fields at the start of an RDB image (as many as can be read).
pub fn parse(buf: &[u8]) -> RdbInfo {
    let mut info = RdbInfo::default();
    if buf.len() < 9 || &buf[..5] != b"REDIS" {
        return info;
    }
    let mut r = Reader { buf, at: 9 };
    while r.byte() == Some(OP_AUX) {
        let (Some(key), Some(value)) = (r.string(), r.string()) else {
            break;
        };
        match key.as_slice() {
            b"repl-id" => info.repl_id = String::from_utf8(value).ok(),
            b"repl-offset" => {
                info.repl_offset = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.parse().ok())
            }
            _ => {}
        }
    }
    info
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

enum Len {
    Plain(usize),
    Int(u8),
    Lzf,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn len(&mut self) -> Option<Len> {
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => Len::Plain(usize::from(b & 0x3F)),
            1 => Len::Plain((usize::from(b & 0x3F) << 8) | usize::from(self.byte()?)),
            2 if b == 0x80 => {
                Len::Plain(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
            }
            2 if b == 0x81 => Len::Plain(
                usize::try_from(u64::from_be_bytes(self.take(8)?.try_into().ok()?)).ok()?,
            ),
            3 if b & 0x3F == 3 => Len::Lzf,
            3 => Len::Int(b & 0x3F),
            _ => return None,
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        match self.len()? {
            Len::Plain(n) => Some(n),
            _ => None,
        }
    }

    /// A string: raw, integer-encoded (as its decimal text) or LZF.
    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Len::Plain(n) => Some(self.take(n)?.to_vec()),
            Len::Int(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Len::Int(1) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Int(2) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Int(_) => None,
            Len::Lzf => {
                let clen = self.plain_len()?;
                let len = self.plain_len()?;
                lzf_decompress(self.take(clen)?, len)
            }
        }
    }
}

/// LZF decompression (liblzf's format, as Redis writes it); None when the
/// input is malformed or does not give exactly `len` bytes.
fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n)?);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1F) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..n + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
        if out.len() > len {
            return None;
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of an RDB saved by redis-server 7.0.15 at SHUTDOWN (a
    /// master with one replica and three keys).
    const SAVED: &[u8] = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfa\x0aredis-bits\xc0\x40\
        \xfa\x05ctime\xc2\xdd\x58\x11\x6b\xfa\x08used-mem\xc2\x60\x29\x10\x00\
        \xfa\x0erepl-stream-db\xc0\x00\xfa\x07repl-id\x28fd412db9b1d679dc1edca3c24b6a6bff74b135e2\
        \xfa\x0brepl-offset\xc0\x6b\xfa\x08aof-base\xc0\x00\xfe\x00\xfb\x03\x00";

    #[test]
    fn reads_the_replication_fields() {
        assert_eq!(
            parse(SAVED),
            RdbInfo {
                repl_id: Some("fd412db9b1d679dc1edca3c24b6a6bff74b135e2".into()),
                repl_offset: Some(107),
            }
        );
    }

    #[test]
    fn no_history_without_the_fields_or_a_file() {
        // A replica's save before it ever synced: no repl-id.
        let unsynced = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfa\x08aof-base\xc0\x00\xff";
        assert_eq!(parse(unsynced), RdbInfo::default());
        assert_eq!(parse(b"garbage"), RdbInfo::default());
        assert_eq!(parse(&SAVED[..120]).repl_offset, None, "cut mid-field");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("dump.rdb")).unwrap(), None);
    }

    #[test]
    fn integer_and_compressed_strings() {
        let mut r = Reader {
            buf: b"\xc1\x39\x30\xc2\x40\x42\x0f\x00",
            at: 0,
        };
        assert_eq!(r.string().unwrap(), b"12345");
        assert_eq!(r.string().unwrap(), b"1000000");
        // "aaaaaaaaaa" in LZF: a literal 'a', then a long back-reference.
        assert_eq!(
            lzf_decompress(b"\x00a\xe0\x00\x00", 10).as_deref(),
            Some(&b"aaaaaaaaaa"[..])
        );
        assert_eq!(
            lzf_decompress(b"\x00a\xe0\x00\x00", 9),
            None,
            "longer than said"
        );
        assert_eq!(
            lzf_decompress(b"\x00a\xa0\x00", 8).as_deref(),
            Some(&b"aaaaaaaa"[..])
        );
        assert_eq!(
            lzf_decompress(b"\x00a\xa0\x05", 8),
            None,
            "reference before the start"
        );
    }
}
