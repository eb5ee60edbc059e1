//! The streaming redactor against arbitrary secrets and outputs.
//!
//! Input layout (short inputs leave the rest empty): a byte `k` (1 + k % 4 secrets), each secret
//! as a length byte and that many bytes; a byte `c` and `c` chunk lengths; then the output. In
//! the output, a 0x00 byte followed by a byte `x` stands for secret `x % k` in its form `x / 4 % 8`
//! (see `forms`), so that the fuzzer can splice encodings it could not compute.
//!
//! The output is redacted in the given chunks (used in turn; 0 feeds an empty chunk) and:
//! - for every secret of at least 4 bytes, no form the redactor promises to remove (raw;
//!   base64 and base64url with and without padding; lower and upper hex; percent-encoding:
//!   see `frona_broker::redact`, computed here independently) is left, except where it overlaps
//!   a `[REDACTED]` mark (a secret like `ACTED]` is "in" every mark and gives nothing away);
//! - the result does not depend on the chunking (it equals a single `push` of everything), and
//!   it is exactly the input with every span of overlapping needle occurrences replaced by one
//!   mark (so no byte of any occurrence is left, even where occurrences overlap);
//! - an output holding none of the needles passes through unchanged.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use frona_broker::redact::{MARK, Redactor, needles};
use libfuzzer_sys::fuzz_target;

/// The forms of `secret` the redactor promises to remove.
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
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    out.push(percent.into_bytes());
    out
}

fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&i| &hay[i..i + needle.len()] == needle)
        .collect()
}

/// Takes a length byte and that many bytes (fewer at the end of the input).
fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, rest)) = data.split_first() else {
        return &[];
    };
    let (taken, rest) = rest.split_at(usize::from(len).min(rest.len()));
    *data = rest;
    taken
}

/// What the redactor must produce, computed the slow and obvious way: every occurrence of every
/// needle in the whole input is covered; overlapping occurrences make one span; each span
/// becomes one mark.
fn reference(secrets: &[&[u8]], input: &[u8]) -> Vec<u8> {
    let all: Vec<_> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| needles(s))
        .collect();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for start in 0..input.len() {
        for needle in &all {
            if input[start..].starts_with(needle) {
                match spans.last_mut() {
                    Some(last) if start < last.1 => last.1 = last.1.max(start + needle.len()),
                    _ => spans.push((start, start + needle.len())),
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end) in spans {
        out.extend_from_slice(&input[at..start]);
        out.extend_from_slice(MARK);
        at = end;
    }
    out.extend_from_slice(&input[at..]);
    out
}

fn redact(secrets: &[&[u8]], input: &[u8], chunks: &[u8]) -> Vec<u8> {
    let mut redactor = Redactor::new(secrets.iter().copied());
    let mut out = Vec::new();
    let mut rest = input;
    if chunks.iter().any(|&s| s > 0) {
        for &size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(usize::from(size).min(rest.len()));
            out.extend(redactor.push(chunk));
            rest = tail;
        }
    }
    out.extend(redactor.push(rest));
    out.extend(redactor.finish());
    out
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let count = data
        .split_first()
        .map_or(1, |(&k, _)| 1 + usize::from(k % 4));
    data = data.get(1..).unwrap_or_default();
    let secrets: Vec<&[u8]> = (0..count).map(|_| take(&mut data)).collect();
    let chunks = take(&mut data);
    let all_forms: Vec<Vec<Vec<u8>>> = secrets.iter().map(|s| forms(s)).collect();
    let mut text = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match (data[i], data.get(i + 1)) {
            (0, Some(&x)) => {
                let x = usize::from(x);
                text.extend_from_slice(&all_forms[x % count][x / 4 % 8]);
                i += 2;
            }
            (b, _) => {
                text.push(b);
                i += 1;
            }
        }
    }

    let out = redact(&secrets, &text, chunks);

    let marks = positions(&out, MARK);
    for (secret, forms) in secrets.iter().zip(&all_forms) {
        if secret.len() < 4 {
            continue;
        }
        for form in forms {
            for at in positions(&out, form) {
                let end = at + form.len();
                assert!(
                    marks.iter().any(|&m| m < end && at < m + MARK.len()),
                    "a form of a secret survived at {at}"
                );
            }
        }
    }
    assert_eq!(
        out,
        redact(&secrets, &text, &[]),
        "the chunking changed the result"
    );
    assert_eq!(
        out,
        reference(&secrets, &text),
        "not every byte of every occurrence was removed"
    );
    let all_needles: Vec<_> = secrets.iter().flat_map(|s| needles(s)).collect();
    if all_needles.iter().all(|n| positions(&text, n).is_empty()) {
        assert_eq!(out, text, "output without a secret must pass unchanged");
    }
});
