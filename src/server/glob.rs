//! Redis glob matching (`stringmatchlen`): `*`, `?`, `[...]` with ranges and
//! `^` negation, and `\` escapes. Used by PSUBSCRIBE and ACL channel rules.
//! Like Redis 7.0 it bounds the recursion on `*` (nesting limit) and stops
//! retrying longer matches once the rest of the pattern cannot match.

/// Whether `s` matches glob `pattern` (case-sensitive unless `nocase`).
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn match_impl(
    mut p: &[u8],
    mut s: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    // Same protection as Redis against patterns like "a*a*a*...".
    if nesting > 1000 {
        return false;
    }
    // Like Redis, the loop runs only while both are non-empty (so `*` does not
    // match the empty string).
    while !s.is_empty() {
        let Some(&pc) = p.first() else {
            break;
        };
        match pc {
            b'*' => {
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                // The rest of the pattern cannot match any shorter suffix either.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
            }
            b'[' => {
                let Some(&c) = s.first() else {
                    return false;
                };
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = class_matches(&mut p, c, nocase);
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Unterminated class consumed the pattern.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                match s.first() {
                    Some(&c) if eq(p[0], c, nocase) => s = &s[1..],
                    _ => return false,
                }
            }
            _ => match s.first() {
                Some(&c) if eq(pc, c, nocase) => s = &s[1..],
                _ => return false,
            },
        }
        p = p.get(1..).unwrap_or_default();
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// The body of a `[...]` class (after `[` and `^`) against `c`. Leaves `p`
/// on the closing `]`, or empty when the class is unterminated.
fn class_matches(p: &mut &[u8], c: u8, nocase: bool) -> bool {
    let mut matched = false;
    loop {
        match p.first() {
            Some(b'\\') if p.len() >= 2 => {
                *p = &p[1..];
                if eq(p[0], c, nocase) {
                    matched = true;
                }
            }
            Some(b']') => break,
            None => {
                // Unterminated class: Redis steps back onto the last char.
                *p = &p[..0];
                break;
            }
            Some(_) if p.len() >= 3 && p[1] == b'-' => {
                let (mut start, mut end) = (p[0], p[2]);
                if start > end {
                    std::mem::swap(&mut start, &mut end);
                }
                let cc = if nocase { c.to_ascii_lowercase() } else { c };
                let (st, en) = if nocase {
                    (start.to_ascii_lowercase(), end.to_ascii_lowercase())
                } else {
                    (start, end)
                };
                *p = &p[2..];
                if cc >= st && cc <= en {
                    matched = true;
                }
            }
            Some(&x) => {
                if eq(x, c, nocase) {
                    matched = true;
                }
            }
        }
        *p = &p[1..];
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_semantics() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        assert!(!m("*", ""));
        assert!(m("*", "+switch-master"));
        assert!(m("+*", "+sdown"));
        assert!(!m("+*", "-sdown"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("__sentinel__:*", "__sentinel__:hello"));
        assert!(m("*master", "+switch-master"));
        assert!(matches(b"MY*", b"mymaster", true));
        assert!(!matches(b"MY*", b"mymaster", false));
        assert!(m("[abc", "b"));
        // A trailing `[` is an empty, unterminated class: it matches nothing (as in Redis).
        assert!(!m("a[", "a["));
        let evil = "a*".repeat(50) + "b";
        assert!(!m(&evil, &"a".repeat(60)));
    }

    #[test]
    fn arbitrary_patterns_never_panic() {
        let alphabet = b"ab*?[]^-\\";
        let mut seed: u64 = 0x2545f4914f6cdd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            alphabet[(seed % alphabet.len() as u64) as usize]
        };
        for _ in 0..5000 {
            let p: Vec<u8> = (0..8).map(|_| next()).collect();
            let s: Vec<u8> = (0..8).map(|_| next()).collect();
            let _ = matches(&p, &s, false);
            let _ = matches(&p, &s, true);
        }
    }
}
