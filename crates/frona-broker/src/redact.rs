//! Removing credential values from a stream of output (the tool's stdout/stderr on its way back
//! to the agent): the raw value and its common encodings (base64 and base64url, with and without
//! padding; lower and upper hex; URL percent-encoding), including when a value is split across
//! chunks. The longest tail of a chunk that is the beginning of a needle is held back until the
//! next chunk (or the end), so a value can never be emitted in two halves, and nothing else is
//! delayed.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// What replaces a value.
pub const MARK: &[u8] = b"[REDACTED]";

/// A copy of a value or of one of its encodings: zeroized when dropped.
type Needle = Zeroizing<Vec<u8>>;

/// The byte strings to remove for `secret`: the value and its encodings.
pub fn needles(secret: &[u8]) -> Vec<Needle> {
    let mut out = vec![Zeroizing::new(secret.to_vec())];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(secret).into_bytes()));
    }
    let lower = Zeroizing::new(frona_backends::hex(secret).into_bytes());
    out.push(Zeroizing::new(lower.to_ascii_uppercase()));
    out.push(lower);
    let mut encoded = Zeroizing::new(Vec::with_capacity(secret.len() * 3));
    for &b in secret {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b);
        } else {
            encoded.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.push(encoded);
    out.retain(|n| n.len() >= 4);
    out.sort_by_key(|n| std::cmp::Reverse(n.len()));
    out.dedup();
    out
}

/// A streaming redactor over several secrets. Cloning one reuses its needles (their encodings
/// are computed once). What it holds (needles, a held-back tail) is zeroized when dropped and
/// never shown by `Debug`.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<Needle>,
    longest: usize,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("needles", &self.needles.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut needles: Vec<Needle> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(needles)
            .collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
        Self {
            needles,
            longest,
            pending: Zeroizing::default(),
        }
    }

    /// Feeds a chunk; returns what can safely be passed on now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = self.replace_all(&self.pending);
        // Hold back the longest tail that could be the start of a needle, and only that: output
        // that cannot begin a value goes out at once (a tool's progress lines are not delayed).
        let keep = (1..=self.longest.saturating_sub(1).min(out.len()))
            .rev()
            .find(|&k| {
                let tail = &out[out.len() - k..];
                self.needles.iter().any(|n| n.starts_with(tail))
            })
            .unwrap_or(0);
        let ready = out.len() - keep;
        self.pending.clear();
        self.pending.extend_from_slice(&out[ready..]);
        zeroize::Zeroize::zeroize(&mut out[ready..]);
        out.truncate(ready);
        out
    }

    /// Flushes what was held back at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let out = self.replace_all(&self.pending);
        self.pending.clear();
        out
    }

    fn replace_all(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        'scan: while i < input.len() {
            for needle in &self.needles {
                if input[i..].starts_with(needle) {
                    out.extend_from_slice(MARK);
                    i += needle.len();
                    continue 'scan;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"sk_live_Abc123/+xyz?&=";

    fn redact_chunked(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut r = Redactor::new([SECRET]);
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            out.extend(r.push(piece));
        }
        out.extend(r.finish());
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn every_encoding_in_every_chunking() {
        for needle in needles(SECRET) {
            let input = [b"before ".as_slice(), &needle, b" after".as_slice()].concat();
            for chunk in 1..input.len() + 1 {
                let out = redact_chunked(&input, chunk);
                for n in needles(SECRET) {
                    assert!(
                        !contains(&out, &n),
                        "chunk {chunk}: {}",
                        String::from_utf8_lossy(&out)
                    );
                }
                assert!(
                    out.starts_with(b"before ") && out.ends_with(b" after"),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }

    #[test]
    fn ordinary_output_passes_unchanged() {
        let text = b"hello world, nothing secret here\n".repeat(100);
        assert_eq!(redact_chunked(&text, 7), text);
    }

    #[test]
    fn only_a_tail_that_could_begin_a_value_is_held_back() {
        let mut r = Redactor::new([SECRET]);
        assert_eq!(
            r.push(b"progress: 10%\n"),
            b"progress: 10%\n",
            "nothing delayed"
        );
        assert_eq!(r.push(b"key=sk_li"), b"key=", "a possible start is held");
        let mut rest = r.push(b"ve_Abc123/+xyz?&= done");
        rest.extend(r.finish());
        assert_eq!(rest, b"[REDACTED] done");
    }
}
