//! Per-session placeholders for credentials bound to hosts: what the agent gets instead of the
//! value, shaped like it (same type prefix, same length class, same kind of characters) so that
//! SDKs and CLIs that check a token's format accept it, and random, so that it is worth nothing
//! outside this session and cannot be guessed by another one.

use frona_backends::Secret;

/// The fewest random characters a placeholder has: it must never turn up in traffic by chance,
/// and never be guessed.
const MIN_RANDOM: usize = 24;

/// Prefixes known not to follow the `letters + separator` pattern.
const KNOWN_PREFIXES: &[&str] = &["AKIA", "ASIA"];

/// The longest prefix kept: a longer run is part of the value, not its type tag.
const MAX_PREFIX: usize = 16;

/// The prefix of `value` that names its type (`ghp_`, `sk-proj-`, `xoxb-`, `hvs.`,
/// `github_pat_`): runs of up to 10 letters and digits, each with at least one letter, ended by
/// `_`, `-` or `.`, while they fit in [`MAX_PREFIX`].
fn type_prefix(value: &[u8]) -> &[u8] {
    if let Some(known) = KNOWN_PREFIXES
        .iter()
        .find(|p| value.starts_with(p.as_bytes()))
    {
        return &value[..known.len()];
    }
    let mut end = 0;
    loop {
        let rest = &value[end..];
        let run = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let separated = rest.get(run).is_some_and(|b| b"_-.".contains(b));
        let has_letter = rest[..run].iter().any(u8::is_ascii_alphabetic);
        if run == 0 || run > 10 || !separated || !has_letter || end + run + 1 > MAX_PREFIX {
            return &value[..end];
        }
        end += run + 1;
    }
}

/// The characters the random part is drawn from, by what the value's own body uses.
fn alphabet(body: &[u8]) -> &'static [u8] {
    const DIGITS: &[u8] = b"0123456789";
    const HEX_LOWER: &[u8] = b"0123456789abcdef";
    const HEX_UPPER: &[u8] = b"0123456789ABCDEF";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let all = |f: fn(&u8) -> bool| !body.is_empty() && body.iter().all(f);
    if all(u8::is_ascii_digit) {
        DIGITS
    } else if all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        HEX_LOWER
    } else if all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)) {
        HEX_UPPER
    } else if all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        UPPER
    } else if all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        LOWER
    } else {
        MIXED
    }
}

/// A new placeholder for a credential whose value is `real` (when frona could read it; a
/// generic `frona_…` shape otherwise).
pub fn placeholder(real: Option<&[u8]>) -> Result<Secret, getrandom::Error> {
    let (prefix, length, alphabet) = match real {
        Some(real) => {
            let prefix = type_prefix(real);
            (prefix, real.len(), alphabet(&real[prefix.len()..]))
        }
        None => (&b"frona_"[..], 46, alphabet(b"Aa")),
    };
    // A typed token's length says nothing its type does not; an untyped value's exact length
    // would, so it is rounded up to a length class (a multiple of 8).
    let random = length.saturating_sub(prefix.len()).max(MIN_RANDOM);
    let random = if prefix.is_empty() {
        random.div_ceil(8) * 8
    } else {
        random
    };
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % alphabet.len();
    let wanted = prefix.len() + random;
    loop {
        let mut out = Vec::with_capacity(wanted);
        out.extend_from_slice(prefix);
        let mut pool = [0u8; 64];
        while out.len() < wanted {
            getrandom::fill(&mut pool)?;
            for &byte in &pool {
                if out.len() < wanted && (byte as usize) < limit {
                    out.push(alphabet[byte as usize % alphabet.len()]);
                }
            }
        }
        let candidate = Secret::new(out);
        // Astronomically unlikely, and cheap to rule out: a placeholder that is, or is inside,
        // the value would make the value appear where only the placeholder should.
        if real.is_none_or(|real| !contains(real, candidate.expose())) {
            return Ok(candidate);
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(real: &str) -> String {
        String::from_utf8(
            placeholder(Some(real.as_bytes()))
                .unwrap()
                .expose()
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn keeps_the_type_prefix_and_length() {
        let real = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let p = shape(real);
        assert!(p.starts_with("ghp_"), "{p}");
        assert_eq!(p.len(), real.len());
        assert_ne!(p, real);
        let p = shape("sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGH0123456789");
        assert!(p.starts_with("sk-proj-"), "{p}");
        let p = shape("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz");
        assert!(p.starts_with("github_pat_"), "{p}");
        let p = shape("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx");
        assert!(p.starts_with("xoxb-"), "{p}");
        assert!(shape("AKIAIOSFODNN7EXAMPLE").starts_with("AKIA"));
        assert!(shape("hvs.CAESIJ1234567890abcdefghijklmnop").starts_with("hvs."));
    }

    #[test]
    fn keeps_the_kind_of_characters() {
        let p = shape("0123456789abcdef0123456789abcdef");
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let p = shape("sk_live_0123456789ABCDEFGHIJKLMNOPQRSTUV");
        assert!(p.starts_with("sk_live_"), "{p}");
        assert!(p[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn short_values_get_enough_randomness() {
        let p = shape("123456");
        assert_eq!(p.len(), MIN_RANDOM);
        assert!(p.bytes().all(|b| b.is_ascii_digit()));
        let generic = placeholder(None).unwrap();
        assert!(generic.expose().starts_with(b"frona_"));
        assert_eq!(generic.len(), 46);
    }

    #[test]
    fn every_session_gets_a_different_one() {
        let real = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        assert_ne!(shape(real), shape(real));
    }

    #[test]
    fn a_value_that_is_all_prefix_is_not_kept() {
        // No separator within reach: the whole value is body, nothing is kept.
        assert_eq!(type_prefix(b"abcdefghijklmnopqrstuvwxyz"), b"");
        assert_eq!(
            type_prefix(b"abcdefghijklmnop_qrstuvwxyz"),
            b"",
            "a run too long"
        );
        assert_eq!(type_prefix(b"1234-5678"), b"", "no letter");
        assert_eq!(
            shape("abcdefghijklmnopqrstuvwxyz").len(),
            32,
            "a length class"
        );
        assert_eq!(shape("0123456789abcdef0123456789abcdef").len(), 32);
    }
}
