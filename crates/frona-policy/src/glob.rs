//! Case-sensitive globs for tool names, arguments, agents and credentials: `*` matches any run
//! of characters (including `/`), `?` exactly one. Compiled once into literal pieces.

use std::fmt;

/// A compiled glob.
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
        let (pattern, name) = (self.text.as_bytes(), candidate.as_bytes());
        let (mut p, mut n) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(&c) if c == b'?' || c == name[n] => {
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
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matching() {
        let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(g("gh", "gh"));
        assert!(!g("gh", "GH"));
        assert!(g("repos/*", "repos/a/b"));
        assert!(g("*.stripe.com", "api.stripe.com"));
        assert!(!g("*.stripe.com", "stripe.com"));
        assert!(g("v?", "v1"));
        assert!(g("*", ""));
        assert!(Glob::new("").is_err());
    }
}
