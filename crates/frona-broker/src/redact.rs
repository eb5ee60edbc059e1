//! Removing credential values from a stream of output (the tool's stdout/stderr on its way back
//! to the agent): the raw value and its common encodings (base64 and base64url, with and without
//! padding; lower and upper hex; URL percent-encoding), including when a value is split across
//! chunks. Values (and encodings) shorter than 4 bytes are left alone.
//!
//! What comes out is the input with every occurrence of every such needle removed, down to the
//! last byte even where occurrences overlap (of one value, or of two values sharing bytes): each
//! run of overlapping occurrences is replaced by one [`MARK`]. The result does not depend on how
//! the input is split into chunks. The longest tail of the input that is the beginning of a
//! needle is held back until the next chunk (or the end), so a value can never be emitted in two
//! halves, and nothing else is delayed. Only input is ever searched, never a mark already
//! written (a value that looks like part of the mark, say `ACTED]`, cannot make the redactor
//! chew on its own output).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::{Zeroize as _, Zeroizing};

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
    let lower = Zeroizing::new(hex::encode(secret).into_bytes());
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
    /// Longest first, so that the first one found at a position is the longest there.
    needles: Vec<Needle>,
    longest: usize,
    /// Input not passed on yet: a tail that may be the start of a needle.
    pending: Zeroizing<Vec<u8>>,
    /// How many leading bytes of `pending` belong to a run of occurrences whose mark has been
    /// written already (an occurrence reached past the end of what was passed on).
    covered: usize,
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
            covered: 0,
        }
    }

    /// Feeds a chunk; returns what can safely be passed on now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        // Hold back the longest tail that could be the start of a needle, and only that: output
        // that cannot begin a value goes out at once (a tool's progress lines are not delayed).
        // Every occurrence that starts before it lies wholly in `pending`.
        let len = self.pending.len();
        let held = (1..=self.longest.saturating_sub(1).min(len))
            .rev()
            .find(|&k| {
                let tail = &self.pending[len - k..];
                self.needles
                    .iter()
                    .any(|n| n.len() > k && n.starts_with(tail))
            })
            .unwrap_or(0);
        self.emit(len - held)
    }

    /// Flushes what was held back at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let out = self.emit(self.pending.len());
        self.covered = 0;
        out
    }

    /// Passes on `pending[..upto]` with each run of overlapping occurrences that starts there
    /// replaced by one mark (an occurrence may reach past `upto`: the bytes it covers there are
    /// remembered in `covered`), and keeps the rest.
    fn emit(&mut self, upto: usize) -> Vec<u8> {
        let input = self.pending.as_slice();
        let mut out = Vec::with_capacity(upto);
        // End of the run of occurrences being removed.
        let mut run_end = self.covered;
        for at in 0..upto {
            let found = self
                .needles
                .iter()
                .find(|n| input[at..].starts_with(n))
                .map(|n| n.len());
            match found {
                Some(len) => {
                    if at >= run_end {
                        out.extend_from_slice(MARK);
                    }
                    run_end = run_end.max(at + len);
                }
                None if at >= run_end => out.push(input[at]),
                None => {}
            }
        }
        self.covered = run_end.saturating_sub(upto);
        let len = self.pending.len();
        self.pending.copy_within(upto.., 0);
        self.pending[len - upto..].zeroize();
        self.pending.truncate(len - upto);
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

    /// Feeds `input` in chunks of the given sizes, in turn (0: an empty chunk).
    fn redact_in(secrets: &[&[u8]], input: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut r = Redactor::new(secrets.iter().copied());
        let mut out = Vec::new();
        let mut rest = input;
        if sizes.iter().any(|&s| s > 0) {
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(size.min(rest.len()));
                out.extend(r.push(chunk));
                rest = tail;
            }
        }
        out.extend(r.push(rest));
        out.extend(r.finish());
        out
    }

    /// Found by fuzzing (fuzz/corpus/redact/regression-mark-rescan.bin): the held-back tail used
    /// to be taken from the output, marks included, and searched again, so a value that looks
    /// like the end of the mark turned `[REDACTED]` into `[RED[REDACTED]` depending on how the
    /// output was split.
    #[test]
    fn a_mark_is_never_searched_again() {
        let secret: &[u8] = b"ACTED]";
        let input = b"xxACTED]ACTED]ACTED]";
        let expected = b"xx[REDACTED][REDACTED][REDACTED]";
        for chunk in 1..=input.len() {
            assert_eq!(
                redact_in(&[secret], input, &[chunk]),
                expected,
                "chunk {chunk}"
            );
        }
    }

    /// Found by fuzzing (fuzz/corpus/redact/regression-overlap.bin): an occurrence overlapping
    /// the end of another one was left partly visible (`[REDACTED]CDEFGH`).
    #[test]
    fn overlapping_occurrences_leave_no_byte() {
        let two: [&[u8]; 2] = [b"xxAB", b"ABCDEFGH"];
        for chunk in 1..12 {
            assert_eq!(
                redact_in(&two, b"xxABCDEFGH tail", &[chunk]),
                b"[REDACTED] tail"
            );
            assert_eq!(
                redact_in(&[b"abab"], b"<ababab>", &[chunk]),
                b"<[REDACTED]>"
            );
        }
        // The hex form of a value ending in the first characters of the value itself.
        let secret: &[u8] = b"65ab1234xe";
        let input = [hex::encode(secret).as_bytes(), &secret[2..]].concat();
        assert_eq!(redact_in(&[secret], &input, &[3]), b"[REDACTED]");
    }

    /// Properties of the redactor for any values and outputs (proptest).
    mod properties {
        use super::{MARK, needles, redact_in};
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// The forms of `secret` the module promises to remove, computed independently.
        fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
            let mut out = vec![secret.to_vec()];
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                out.push(engine.encode(secret).into_bytes());
            }
            let lower: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            out.push(lower.to_ascii_uppercase().into_bytes());
            out.push(lower.into_bytes());
            let percent: String = secret
                .iter()
                .map(|&b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            out.push(percent.into_bytes());
            out
        }

        const FORMS: usize = 8;

        /// A value of at least 4 bytes: any bytes, or printable ASCII (a typical token).
        fn secret() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![vec(any::<u8>(), 4..24), vec(0x20u8..0x7f, 4..24)]
        }

        /// Mostly bytes from a small alphabet (with the mark's), so that values overlap each
        /// other, themselves and the mark.
        fn near_byte() -> impl Strategy<Value = u8> {
            prop_oneof![
                1 => any::<u8>(),
                4 => prop::sample::select(b"abAB[REDACTED]".to_vec()),
            ]
        }

        /// Chunk sizes, used in turn; 0 feeds an empty chunk.
        fn chunking() -> impl Strategy<Value = Vec<usize>> {
            vec(0usize..24, 1..6)
        }

        fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
            (0..(hay.len() + 1).saturating_sub(needle.len()))
                .filter(|&i| hay[i..].starts_with(needle))
                .collect()
        }

        /// No form of `secret` in `out` except where it overlaps a mark (a value like `ACTED]`
        /// is "in" every mark, which gives nothing away).
        fn no_form_left(secret: &[u8], out: &[u8]) -> Result<(), TestCaseError> {
            let marks = positions(out, MARK);
            for (index, form) in forms(secret).iter().enumerate() {
                for at in positions(out, form) {
                    prop_assert!(
                        marks
                            .iter()
                            .any(|&m| m < at + form.len() && at < m + MARK.len()),
                        "form {index} of the value left at {at}"
                    );
                }
            }
            Ok(())
        }

        /// The obvious whole-input redaction: every occurrence of every needle covered, each run
        /// of overlapping occurrences replaced by one mark.
        fn reference(secrets: &[&[u8]], input: &[u8]) -> Vec<u8> {
            let all: Vec<_> = secrets
                .iter()
                .filter(|s| !s.is_empty())
                .flat_map(|s| needles(s))
                .collect();
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for start in 0..input.len() {
                for needle in all.iter().filter(|n| input[start..].starts_with(n)) {
                    let end = start + needle.len();
                    match runs.last_mut() {
                        Some(last) if start < last.1 => last.1 = last.1.max(end),
                        _ => runs.push((start, end)),
                    }
                }
            }
            let mut out = Vec::new();
            let mut at = 0;
            for (start, end) in runs {
                out.extend_from_slice(&input[at..start]);
                out.extend_from_slice(MARK);
                at = end;
            }
            out.extend_from_slice(&input[at..]);
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// A value in any promised form, anywhere in any bytes, in any chunking, is gone.
            #[test]
            fn no_form_of_a_value_survives(
                secret in secret(),
                form in 0..FORMS,
                before in vec(any::<u8>(), 0..48),
                after in vec(any::<u8>(), 0..48),
                sizes in chunking(),
            ) {
                let input = [&before[..], &forms(&secret)[form], &after[..]].concat();
                let out = redact_in(&[&secret], &input, &sizes);
                no_form_left(&secret, &out)?;
                prop_assert!(!positions(&out, MARK).is_empty());
            }

            /// Several values at once, each in several forms, mixed with any bytes.
            #[test]
            fn several_values_at_once(
                secrets in vec(secret(), 2..5),
                pieces in vec((any::<prop::sample::Index>(), 0..FORMS, vec(any::<u8>(), 0..8)), 1..10),
                sizes in chunking(),
            ) {
                let mut input = Vec::new();
                for (which, form, filler) in &pieces {
                    input.extend_from_slice(&forms(&secrets[which.index(secrets.len())])[*form]);
                    input.extend_from_slice(filler);
                }
                let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
                let out = redact_in(&refs, &input, &sizes);
                for secret in &secrets {
                    no_form_left(secret, &out)?;
                }
            }

            /// The result is the whole-input redaction whatever the chunking, also for short
            /// values, values sharing bytes, and output full of near misses.
            #[test]
            fn any_chunking_gives_the_whole_input_redaction(
                secrets in vec(vec(near_byte(), 1..10), 1..4),
                pieces in vec((any::<prop::sample::Index>(), 0..FORMS, 0usize..12, vec(near_byte(), 0..4)), 0..12),
                sizes in chunking(),
            ) {
                let mut input = Vec::new();
                for (which, form, cut, filler) in &pieces {
                    let form = &forms(&secrets[which.index(secrets.len())])[*form];
                    input.extend_from_slice(&form[..form.len().saturating_sub(*cut % 3)]);
                    input.extend_from_slice(filler);
                }
                let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
                prop_assert_eq!(redact_in(&refs, &input, &sizes), reference(&refs, &input));
            }

            /// Output in which no needle of any value occurs passes through unchanged, even when
            /// it is full of beginnings and ends of the values' forms.
            #[test]
            fn output_without_a_value_passes_unchanged(
                secret in secret(),
                pieces in vec((0..FORMS, 1usize..24, any::<bool>(), vec(any::<u8>(), 0..6)), 0..10),
                sizes in chunking(),
            ) {
                let all = forms(&secret);
                let mut input = Vec::new();
                for (form, cut, head, filler) in &pieces {
                    let form = &all[*form];
                    let cut = (*cut).min(form.len() - 1);
                    input.extend_from_slice(if *head { &form[..cut] } else { &form[form.len() - cut..] });
                    input.extend_from_slice(filler);
                }
                prop_assume!(needles(&secret).iter().all(|n| positions(&input, n).is_empty()));
                prop_assert_eq!(redact_in(&[&secret], &input, &sizes), input);
            }
        }
    }
}
