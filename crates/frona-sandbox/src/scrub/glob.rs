//! Case-insensitive glob matching for environment variable names (`*` and `?` only).

/// Whether `name` matches `pattern`, ignoring ASCII case.
///
/// `*` matches any run of bytes (including none), `?` exactly one byte. Names are matched as
/// bytes so that a non-UTF-8 name can still be stripped.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `pattern` is a usable glob: non-empty and free of `=` and NUL, which no name holds.
pub fn is_valid(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.contains(['=', '\0'])
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_case() {
        assert!(matches(b"*_API_KEY", b"OPENAI_API_KEY"));
        assert!(matches(b"*_API_KEY", b"openai_api_key"));
        assert!(!matches(b"*_API_KEY", b"API_KEY"));
        assert!(matches(b"*SECRET*", b"SECRET"));
        assert!(matches(b"*SECRET*", b"MY_SECRET_THING"));
        assert!(!matches(b"*_PASS", b"SSH_ASKPASS"));
        assert!(matches(b"*_PASS", b"DB_PASS"));
        assert!(matches(b"LC_*", b"LC_ALL"));
        assert!(matches(b"A?C", b"ABC"));
        assert!(!matches(b"A?C", b"AC"));
        assert!(matches(b"*", b""));
        assert!(matches(b"**X**", b"aXb"));
        assert!(!matches(b"PATH", b"PATHX"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let name = vec![b'a'; 4096];
        assert!(!matches(b"*a*a*a*a*a*a*a*a*b", &name));
    }
}
