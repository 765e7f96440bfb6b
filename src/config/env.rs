//! `${NAME}` in the string values of raftinel.toml: replaced by the
//! environment variable `NAME` when the file is loaded. On Kubernetes the
//! pod's name and namespace reach the daemon this way (downward API), so
//! one ConfigMap serves every pod of a StatefulSet. An unset variable is a
//! configuration error: a daemon must never run with a name it could not
//! fill in. `$$` is a literal `$`; a `$` not followed by `{` or `$` is kept.

/// Expands `${NAME}` in `s` with `lookup`. The error says which variable is
/// missing or malformed.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
            let name = &body[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("${{{name}}} is not a valid variable name"));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("the environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand`] with the process environment (an empty variable counts as
/// unset: the downward API never gives an empty pod name).
pub fn expand_env(s: &str) -> Result<String, String> {
    expand(s, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD" => Some("raftinel-1".into()),
            "NS" => Some("prod".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_names_and_keeps_the_rest() {
        assert_eq!(
            expand("${POD}.h.${NS}.svc:26379", env).unwrap(),
            "raftinel-1.h.prod.svc:26379"
        );
        assert_eq!(expand("plain", env).unwrap(), "plain");
        assert_eq!(expand("a$$b $x $", env).unwrap(), "a$b $x $");
        assert_eq!(expand("${POD}${NS}", env).unwrap(), "raftinel-1prod");
    }

    #[test]
    fn refuses_unset_and_malformed() {
        assert_eq!(
            expand("${MISSING}", env).unwrap_err(),
            "the environment variable MISSING is not set"
        );
        assert!(expand("${POD", env).unwrap_err().contains("unterminated"));
        assert!(expand("${}", env).unwrap_err().contains("not a valid"));
        assert!(expand("${1X}", env).unwrap_err().contains("not a valid"));
        assert!(expand("${A-B}", env).unwrap_err().contains("not a valid"));
    }
}
