//! The one glob language of frona: `*` matches any run of characters (including `/` and none),
//! `?` exactly one. Policy patterns (tool names, arguments, agents, credentials) match
//! case-sensitively; environment variable names (the scrubber's strip and keep lists) match
//! ignoring ASCII case. Both go through [`matches`].

use std::fmt;

/// Whether a pattern tells upper from lower case (ASCII only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    /// ASCII case is ignored: `*_api_key` matches `OPENAI_API_KEY`.
    Insensitive,
}

/// Whether `name` matches `pattern`. Works on bytes so that a non-UTF-8 environment variable
/// name can still be matched.
///
/// Iterative, with single-star backtracking: linear in practice, no recursion, so a hostile
/// pattern such as `*a*a*a*a*b` against a long name cannot stall the caller.
pub fn matches(pattern: &[u8], name: &[u8], case: Case) -> bool {
    let same = |p: u8, n: u8| match case {
        Case::Sensitive => p == n,
        Case::Insensitive => p.eq_ignore_ascii_case(&n),
    };
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || same(c, name[n]) => {
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

/// A case-sensitive policy glob, checked once when the policy loads.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    /// Literal text with no wildcard: compared directly.
    literal: bool,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing; use \"*\" to match anything".into());
        }
        Ok(Self {
            text: text.to_owned(),
            literal: !text.contains(['*', '?']),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal text, when the pattern has no wildcard.
    pub fn literal(&self) -> Option<&str> {
        self.literal.then_some(self.text.as_str())
    }

    pub fn matches(&self, candidate: &str) -> bool {
        if self.literal {
            return self.text == candidate;
        }
        matches(self.text.as_bytes(), candidate.as_bytes(), Case::Sensitive)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::{Case, Glob, matches};

    #[test]
    fn policy_globs_are_case_sensitive() {
        let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(g("gh", "gh"));
        assert!(!g("gh", "GH"));
        assert!(!g("g*", "GH"));
        assert!(g("repos/*", "repos/a/b"));
        assert!(g("*.stripe.com", "api.stripe.com"));
        assert!(!g("*.stripe.com", "stripe.com"));
        assert!(g("v?", "v1"));
        assert!(g("*", ""));
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn insensitive_stars_and_questions() {
        let m = |p: &[u8], s: &[u8]| matches(p, s, Case::Insensitive);
        assert!(m(b"*_API_KEY", b"OPENAI_API_KEY"));
        assert!(m(b"*_API_KEY", b"openai_api_key"));
        assert!(!m(b"*_API_KEY", b"API_KEY"));
        assert!(m(b"*SECRET*", b"SECRET"));
        assert!(m(b"*SECRET*", b"MY_SECRET_THING"));
        assert!(!m(b"*_PASS", b"SSH_ASKPASS"));
        assert!(m(b"*_PASS", b"DB_PASS"));
        assert!(m(b"LC_*", b"LC_ALL"));
        assert!(m(b"A?C", b"ABC"));
        assert!(!m(b"A?C", b"AC"));
        assert!(m(b"*", b""));
        assert!(m(b"**X**", b"aXb"));
        assert!(!m(b"PATH", b"PATHX"));
        assert!(!matches(b"*_api_key", b"OPENAI_API_KEY", Case::Sensitive));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let name = vec![b'a'; 4096];
        assert!(!matches(b"*a*a*a*a*a*a*a*a*b", &name, Case::Insensitive));
        assert!(!matches(b"*a*a*a*a*a*a*a*a*b", &name, Case::Sensitive));
    }
}
