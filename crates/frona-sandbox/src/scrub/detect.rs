//! Value detectors: does an environment value look like a credential, whatever its name?
//!
//! Each detector looks for a documented token shape anywhere in the value, anchored at a word
//! boundary, and demands enough body characters that ordinary values (paths, colour tables,
//! git SHAs, UUIDs) do not trip it. Detectors are hand-written rather than regexes: they run on
//! every variable at every start, and they are easy to fuzz.

/// What a detector saw; the text completes "value looks like …".
pub type Kind = &'static str;

/// Characters allowed in a token body after its prefix.
#[derive(Clone, Copy)]
enum Body {
    /// `[A-Za-z0-9]`
    Alnum,
    /// `[A-Za-z0-9_]`
    Word,
    /// `[A-Za-z0-9_-]`
    Token,
    /// `[A-Za-z0-9-]`
    AlnumDash,
    /// `[A-Z0-9]`
    UpperDigit,
}

impl Body {
    fn allows(self, b: u8) -> bool {
        match self {
            Body::Alnum => b.is_ascii_alphanumeric(),
            Body::Word => b.is_ascii_alphanumeric() || b == b'_',
            Body::Token => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            Body::AlnumDash => b.is_ascii_alphanumeric() || b == b'-',
            Body::UpperDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
        }
    }
}

/// A vendor token: fixed prefix, then `min..=max` body characters.
struct Prefixed {
    prefix: &'static [u8],
    kind: Kind,
    body: Body,
    min: usize,
    max: usize,
    /// The body must hold both a letter and a digit (for short, generic prefixes like `sk-`).
    mixed: bool,
}

const fn tok(prefix: &'static [u8], kind: Kind, body: Body, min: usize, max: usize) -> Prefixed {
    Prefixed {
        prefix,
        kind,
        body,
        min,
        max,
        mixed: false,
    }
}

const ANY: usize = usize::MAX;
const OPENAI: Kind = "an OpenAI API key";
const GITHUB: Kind = "a GitHub token";
const SLACK: Kind = "a Slack token";
const STRIPE: Kind = "a Stripe key";
const AWS_KEY_ID: Kind = "an AWS access key id";

/// Vendor token shapes, most specific prefix first.
const PREFIXED: &[Prefixed] = &[
    tok(b"sk-ant-", "an Anthropic API key", Body::Token, 20, ANY),
    tok(b"sk-proj-", OPENAI, Body::Token, 20, ANY),
    Prefixed {
        mixed: true,
        ..tok(b"sk-", OPENAI, Body::Token, 20, ANY)
    },
    tok(b"github_pat_", GITHUB, Body::Word, 40, ANY),
    tok(b"ghp_", GITHUB, Body::Alnum, 30, ANY),
    tok(b"gho_", GITHUB, Body::Alnum, 30, ANY),
    tok(b"ghu_", GITHUB, Body::Alnum, 30, ANY),
    tok(b"ghs_", GITHUB, Body::Alnum, 30, ANY),
    tok(b"ghr_", GITHUB, Body::Alnum, 30, ANY),
    tok(b"glpat-", "a GitLab token", Body::Token, 20, ANY),
    tok(b"xoxa-", SLACK, Body::AlnumDash, 10, ANY),
    tok(b"xoxb-", SLACK, Body::AlnumDash, 10, ANY),
    tok(b"xoxp-", SLACK, Body::AlnumDash, 10, ANY),
    tok(b"xoxr-", SLACK, Body::AlnumDash, 10, ANY),
    tok(b"sk_live_", STRIPE, Body::Alnum, 20, ANY),
    tok(b"rk_live_", STRIPE, Body::Alnum, 20, ANY),
    tok(b"sk_test_", STRIPE, Body::Alnum, 20, ANY),
    tok(b"AKIA", AWS_KEY_ID, Body::UpperDigit, 16, 16),
    tok(b"ASIA", AWS_KEY_ID, Body::UpperDigit, 16, 16),
    tok(b"AIza", "a Google API key", Body::Token, 35, 35),
];

/// Returns what the value looks like, if it holds a credential anywhere in it.
pub fn detect(value: &[u8]) -> Option<Kind> {
    PREFIXED
        .iter()
        .find(|rule| find_prefixed(rule, value))
        .map(|rule| rule.kind)
        .or_else(|| pem_private_key(value).then_some("a PEM private key"))
        .or_else(|| jwt(value).then_some("a JSON Web Token"))
        .or_else(|| url_with_password(value).then_some("a URL with a password"))
}

fn boundary_before(value: &[u8], at: usize) -> bool {
    at == 0 || !value[at - 1].is_ascii_alphanumeric()
}

/// Start offsets of `needle` in `hay`.
fn occurrences<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// Length of the run of bytes allowed by `body` starting at `from`.
fn run(value: &[u8], from: usize, body: Body) -> usize {
    value[from..]
        .iter()
        .take_while(|&&b| body.allows(b))
        .count()
}

fn find_prefixed(rule: &Prefixed, value: &[u8]) -> bool {
    occurrences(value, rule.prefix).any(|at| {
        if !boundary_before(value, at) {
            return false;
        }
        let start = at + rule.prefix.len();
        let len = run(value, start, rule.body);
        let body = &value[start..start + len];
        len >= rule.min
            && len <= rule.max
            && (!rule.mixed
                || (body.iter().any(u8::is_ascii_digit)
                    && body.iter().any(u8::is_ascii_alphabetic)))
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    occurrences(hay, needle).next().is_some()
}

fn pem_private_key(value: &[u8]) -> bool {
    contains(value, b"-----BEGIN ") && contains(value, b"PRIVATE KEY-----")
}

/// `eyJ…` header `.` `eyJ…` payload `.` signature (possibly empty, for `alg: none`).
fn jwt(value: &[u8]) -> bool {
    occurrences(value, b"eyJ").any(|at| {
        if !boundary_before(value, at) {
            return false;
        }
        let header = run(value, at, Body::Token);
        let dot = at + header;
        if header < 10 || value.get(dot) != Some(&b'.') || !value[dot + 1..].starts_with(b"eyJ") {
            return false;
        }
        let payload = run(value, dot + 1, Body::Token);
        payload >= 10 && value.get(dot + 1 + payload) == Some(&b'.')
    })
}

/// `scheme://user:password@host…` with a non-empty password.
fn url_with_password(value: &[u8]) -> bool {
    occurrences(value, b"://").any(|at| {
        let scheme_len = value[..at]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
            .count();
        if scheme_len == 0 || !value[at - scheme_len].is_ascii_alphabetic() {
            return false;
        }
        let rest = &value[at + 3..];
        let authority_len = rest
            .iter()
            .take_while(|b| !matches!(b, b'/' | b'?' | b'#') && !b.is_ascii_whitespace())
            .count();
        let authority = &rest[..authority_len];
        let Some(at_sign) = authority.iter().rposition(|&b| b == b'@') else {
            return false;
        };
        let userinfo = &authority[..at_sign];
        userinfo
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| colon + 1 < userinfo.len())
    })
}

#[cfg(test)]
mod tests {
    use super::detect;

    fn kind(v: &str) -> Option<&'static str> {
        detect(v.as_bytes())
    }

    #[test]
    fn vendor_tokens() {
        let cases = [
            ("sk-proj-abcDEF1234567890abcdefGHIJ", "an OpenAI API key"),
            (
                "sk-Abc123def456ghi789jkl012mno345pqr678stu901vw",
                "an OpenAI API key",
            ),
            (
                "sk-ant-api03-abcdefghij0123456789ABCDEFGH",
                "an Anthropic API key",
            ),
            ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            ("gho_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            ("ghu_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            ("ghs_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            ("ghr_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
                "a GitHub token",
            ),
            ("glpat-abcdefghij0123456789", "a GitLab token"),
            ("xoxb-1234567890-abcdefghij", "a Slack token"),
            ("xoxp-1234567890-abcdefghij", "a Slack token"),
            ("sk_live_0123456789abcdefghijABCD", "a Stripe key"),
            ("rk_live_0123456789abcdefghijABCD", "a Stripe key"),
            ("sk_test_0123456789abcdefghijABCD", "a Stripe key"),
            ("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
            ("ASIAIOSFODNN7EXAMPLE", "an AWS access key id"),
            (
                "AIzaSyA-0123456789abcdefghijklmnopqrstu",
                "a Google API key",
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "a JSON Web Token",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----",
                "a PEM private key",
            ),
            (
                "postgres://app:hunter2@db.internal:5432/app",
                "a URL with a password",
            ),
            ("https://user:tok@example.com", "a URL with a password"),
        ];
        for (value, expected) in cases {
            assert_eq!(kind(value), Some(expected), "{value}");
        }
    }

    #[test]
    fn embedded_in_a_longer_value() {
        assert_eq!(
            kind("--token=ghp_0123456789abcdefghijABCDEFGHIJ012345 --x"),
            Some("a GitHub token")
        );
        assert_eq!(
            kind("Bearer sk-proj-abcDEF1234567890abcdefGHIJ"),
            Some("an OpenAI API key")
        );
    }

    #[test]
    fn ordinary_values_are_not_credentials() {
        let values = [
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/home/dev/.cargo/bin",
            "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:*.tar=01;31",
            "/run/user/1000/keyring/ssh",
            "/tmp/ssh-XXXXabcd/agent.1234",
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "123e4567-e89b-12d3-a456-426614174000",
            "en_US.UTF-8",
            "unix:path=/run/user/1000/bus",
            "https://github.com/frona-dev/frona.git",
            "http://[::1]:8080/path?x=1",
            "git@github.com:frona-dev/frona.git",
            "https://user@example.com/",
            "desk-top-0123456789abcdefghijklmn",
            "task-abcdefghijklmnopqrstuvwxyz",
            "sk-abcdefghijklmnopqrstuvwxyz",
            "AKIA",
            "MASIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLEX",
            "eyJhbGciOiJIUzI1NiJ9",
            "",
        ];
        for value in values {
            assert_eq!(kind(value), None, "{value}");
        }
    }

    #[test]
    fn short_bodies_are_not_tokens() {
        assert_eq!(kind("ghp_short"), None);
        assert_eq!(kind("xoxb-123"), None);
        assert_eq!(kind("sk_live_abc"), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        const ALPHABET: &[u8] = b":/@.-_eyJAKIAghp_sk-x0Z\n";
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ALPHABET[(seed % ALPHABET.len() as u64) as usize]
                })
                .collect();
            let _ = detect(&bytes);
        }
    }
}
