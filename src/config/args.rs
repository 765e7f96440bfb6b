//! Redis's config-line lexer (`sdssplitargs`), its quoting (`sdscatrepr`) and
//! the C number parsers Sentinel uses on directive values (`atoi`,
//! `strtoull`), so that odd inputs are read exactly as redis-sentinel reads them.

/// Splits one config line like Redis's `sdssplitargs`: blanks separate
/// arguments, `"..."` understands `\n \r \t \b \a \xHH` and `\<c>`, `'...'`
/// only `\'`; a closing quote must be followed by a blank or the end.
/// `None` = unbalanced quotes (Redis: "Unbalanced quotes in configuration line").
pub(crate) fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let p = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    loop {
        while i < p.len() && is_space(p[i]) {
            i += 1;
        }
        if i >= p.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            let c = p.get(i).copied();
            if inq {
                match c {
                    None => return None,
                    Some(b'\\')
                        if p.get(i + 1) == Some(&b'x')
                            && p.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && p.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        let hex = std::str::from_utf8(&p[i + 2..i + 4]).ok()?;
                        cur.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 4;
                    }
                    Some(b'\\') if i + 1 < p.len() => {
                        cur.push(match p[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    }
                    Some(b'"') => {
                        if p.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        cur.push(other);
                        i += 1;
                    }
                }
            } else if insq {
                match c {
                    None => return None,
                    Some(b'\\') if p.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        if p.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        cur.push(other);
                        i += 1;
                    }
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => {
                        if c.is_some() {
                            i += 1;
                        }
                        break;
                    }
                    Some(b'"') => {
                        inq = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        insq = true;
                        i += 1;
                    }
                    Some(other) => {
                        cur.push(other);
                        i += 1;
                    }
                }
            }
        }
        out.push(cur);
    }
}

/// Redis's `sdscatrepr`: always double-quoted, C escapes, `\xHH` for
/// non-printable bytes.
pub(crate) fn repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// The value as-is when it reads back as that single argument, else quoted.
/// Sentinel writes most values raw (a password with a blank would break the
/// file on reload); this keeps the raw form byte-identical for every value
/// that survives a reload and quotes only the ones that would not.
pub(crate) fn raw_or_quoted(s: &str) -> String {
    match split_args(s) {
        Some(v) if v.len() == 1 && v[0] == s.as_bytes() => s.to_string(),
        _ => repr(s),
    }
}

/// C `atoi`: leading blanks, optional sign, digits up to the first non-digit;
/// garbage reads as 0. Saturates instead of overflowing.
pub(crate) fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

/// C `strtoull(s, NULL, 10)`: like atoi, a leading `-` negates modulo 2^64.
pub(crate) fn strtoull(s: &str) -> u64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: u64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(b - b'0')))
        {
            Some(x) => x,
            None => return u64::MAX,
        };
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// Redis `yesnotoi`: case-insensitive yes/no.
pub(crate) fn yes_no(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if s.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Option<Vec<String>> {
        split_args(line).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn splits_like_sdssplitargs() {
        assert_eq!(
            s("  a  b\tc "),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(s(r#"logfile """#), Some(vec!["logfile".into(), "".into()]));
        assert_eq!(
            s(r#"x "a b\n\x41""#),
            Some(vec!["x".into(), "a b\nA".into()])
        );
        assert_eq!(s(r"x 'it\'s'"), Some(vec!["x".into(), "it's".into()]));
        assert_eq!(s(r#"x a"b c""#), Some(vec!["x".into(), "ab c".into()]));
        assert_eq!(
            s(r"port 26379 \"),
            Some(vec!["port".into(), "26379".into(), "\\".into()])
        );
        assert_eq!(s(r#"port "abc"#), None);
        assert_eq!(s("port 'a'b"), None);
        assert_eq!(s(""), Some(vec![]));
    }

    #[test]
    fn repr_and_numbers() {
        assert_eq!(repr("a\"b\\\n\x01"), r#""a\"b\\\n\x01""#);
        assert_eq!(raw_or_quoted("s3cret"), "s3cret");
        assert_eq!(raw_or_quoted("a b"), "\"a b\"");
        assert_eq!(raw_or_quoted(""), "\"\"");
        assert_eq!(atoi(" 12abc"), 12);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("-5"), -5);
        assert_eq!(strtoull("7"), 7);
        assert_eq!(strtoull("-1"), u64::MAX);
        assert_eq!(yes_no("YES"), Some(true));
        assert_eq!(yes_no("maybe"), None);
    }
}
