//! RFC 6238 time-based one-time passwords for credentials of kind `totp`.
//!
//! The stored value is the seed: a bare base32 string (RFC 4648 alphabet, case-insensitive,
//! spaces and `=` padding ignored) or an `otpauth://totp/LABEL?secret=…` URI whose optional
//! `algorithm`, `digits` and `period` parameters override the defaults (SHA1, 6, 30 s).
//! The seed only ever lives in a [`Secret`] or a zeroized buffer, and no error message
//! carries any part of it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use crate::Secret;

/// The HMAC hash function of an RFC 6238 generator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a seed gives no code. Never holds the seed or any part of it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP seed is empty")]
    Empty,
    #[error("the TOTP seed is not valid base32")]
    InvalidBase32,
    #[error("the TOTP seed is not valid UTF-8")]
    NotUtf8,
    #[error("only `otpauth://totp/` URIs are supported")]
    NotTotpUri,
    #[error("the otpauth URI has no `secret` parameter")]
    MissingSecret,
    #[error("unsupported algorithm `{0}` (SHA1, SHA256 or SHA512)")]
    UnsupportedAlgorithm(String),
    #[error("digits must be 6 to 8")]
    Digits,
    #[error("period must be a whole number of seconds from 1 to 86400")]
    Period,
}

/// A parsed seed: the decoded key (zeroized on drop) and the generator's parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    key: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    digits: u32,
    period: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("key", &format_args!("<redacted, {} bytes>", self.key.len()))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish()
    }
}

impl Totp {
    pub const DEFAULT_DIGITS: u32 = 6;
    pub const DEFAULT_PERIOD: u64 = 30;

    /// Reads a bare base32 seed or an `otpauth://totp/` URI.
    pub fn parse(seed: &Secret) -> Result<Self, TotpError> {
        let text = std::str::from_utf8(seed.expose())
            .map_err(|_| TotpError::NotUtf8)?
            .trim();
        if text.is_empty() {
            return Err(TotpError::Empty);
        }
        match strip_prefix_ignore_case(text, "otpauth://") {
            Some(rest) => Self::from_uri(rest),
            None => Ok(Self {
                key: base32_decode(text.as_bytes())?,
                algorithm: Algorithm::Sha1,
                digits: Self::DEFAULT_DIGITS,
                period: Self::DEFAULT_PERIOD,
            }),
        }
    }

    /// `rest` is the URI after `otpauth://`.
    fn from_uri(rest: &str) -> Result<Self, TotpError> {
        let rest = rest.split('#').next().unwrap_or_default();
        strip_prefix_ignore_case(rest, "totp/").ok_or(TotpError::NotTotpUri)?;
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let mut key = None;
        let mut algorithm = Algorithm::Sha1;
        let mut digits = Self::DEFAULT_DIGITS;
        let mut period = Self::DEFAULT_PERIOD;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name.to_ascii_lowercase().as_str() {
                "secret" => key = Some(base32_decode(&percent_decode(value))?),
                "algorithm" => algorithm = parse_algorithm(value)?,
                "digits" => {
                    digits = value
                        .parse()
                        .ok()
                        .filter(|d| (6..=8).contains(d))
                        .ok_or(TotpError::Digits)?;
                }
                "period" => {
                    period = value
                        .parse()
                        .ok()
                        .filter(|p| (1..=86_400).contains(p))
                        .ok_or(TotpError::Period)?;
                }
                _ => {}
            }
        }
        Ok(Self {
            key: key.ok_or(TotpError::MissingSecret)?,
            algorithm,
            digits,
            period,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Seconds each code is valid for.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The code for `unix_time` (seconds since the epoch): ASCII digits, zero-padded.
    pub fn code(&self, unix_time: u64) -> Secret {
        let value = hotp(
            &self.key,
            unix_time / self.period,
            self.digits,
            self.algorithm,
        );
        Secret::from_string(format!("{value:0width$}", width = self.digits as usize))
    }
}

/// The current code of `seed` at `unix_time` (seconds since the epoch).
pub fn code(seed: &Secret, unix_time: u64) -> Result<Secret, TotpError> {
    Ok(Totp::parse(seed)?.code(unix_time))
}

/// RFC 4226 HOTP: HMAC of the big-endian counter, dynamic truncation, `digits` decimal digits.
fn hotp(key: &[u8], counter: u64, digits: u32, algorithm: Algorithm) -> u32 {
    let message = counter.to_be_bytes();
    let digest = match algorithm {
        Algorithm::Sha1 => hmac::<Hmac<Sha1>>(key, &message),
        Algorithm::Sha256 => hmac::<Hmac<Sha256>>(key, &message),
        Algorithm::Sha512 => hmac::<Hmac<Sha512>>(key, &message),
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    match 10u32.checked_pow(digits) {
        Some(modulus) => binary % modulus,
        None => binary,
    }
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
    let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(message);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

fn parse_algorithm(value: &str) -> Result<Algorithm, TotpError> {
    match value.to_ascii_uppercase().replace('-', "").as_str() {
        "SHA1" => Ok(Algorithm::Sha1),
        "SHA256" => Ok(Algorithm::Sha256),
        "SHA512" => Ok(Algorithm::Sha512),
        _ => {
            // Echo only what plainly is an algorithm name, never an arbitrary string.
            let shown = if value.len() <= 16
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                value.to_owned()
            } else {
                "…".to_owned()
            };
            Err(TotpError::UnsupportedAlgorithm(shown))
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `%XX` escapes and `+` as space, into a zeroized buffer (the value is seed material).
fn percent_decode(value: &str) -> Zeroizing<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i] {
            b'%' => bytes
                .get(i + 1)
                .and_then(|&b| hex(b))
                .zip(bytes.get(i + 2).and_then(|&b| hex(b))),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some((hi, lo)), _) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// RFC 4648 base32, case-insensitive; whitespace and `=` are skipped, trailing bits that do
/// not make a whole byte are dropped (as authenticator apps do).
fn base32_decode(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, TotpError> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    for &c in text {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b'=' => continue,
            c if c.is_ascii_whitespace() => continue,
            _ => return Err(TotpError::InvalidBase32),
        };
        symbols += 1;
        buffer = (buffer << 5) | u64::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    match (symbols, out.is_empty()) {
        (0, _) => Err(TotpError::Empty),
        (_, true) => Err(TotpError::InvalidBase32),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_KEY: &str = "12345678901234567890";
    const SHA256_KEY: &str = "12345678901234567890123456789012";
    const SHA512_KEY: &str = "1234567890123456789012345678901234567890123456789012345678901234";

    fn base32(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let (mut buffer, mut bits) = (0u32, 0u32);
        for &b in bytes {
            buffer = (buffer << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
        }
        while !out.len().is_multiple_of(8) {
            out.push('=');
        }
        out
    }

    fn secret(text: &str) -> Secret {
        Secret::from_string(text.to_owned())
    }

    fn code_text(seed: &str, time: u64) -> String {
        String::from_utf8(code(&secret(seed), time).unwrap().expose().to_vec()).unwrap()
    }

    #[test]
    fn encoder_matches_known_base32() {
        assert_eq!(
            base32(SHA1_KEY.as_bytes()),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(base32(b"f"), "MY======");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(&*base32_decode(b"MZXW6YTBOI======").unwrap(), b"foobar");
    }

    #[test]
    fn rfc6238_appendix_b() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            for (key, algorithm, expected) in [
                (SHA1_KEY, "SHA1", sha1),
                (SHA256_KEY, "SHA256", sha256),
                (SHA512_KEY, "SHA512", sha512),
            ] {
                let uri = format!(
                    "otpauth://totp/ACME:alice?secret={}&algorithm={algorithm}&digits=8&period=30",
                    base32(key.as_bytes())
                );
                assert_eq!(code_text(&uri, time), expected, "{algorithm} at {time}");
            }
        }
    }

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(SHA1_KEY.as_bytes(), counter as u64, 6, Algorithm::Sha1),
                value
            );
        }
    }

    #[test]
    fn bare_seed_uses_defaults_and_pads() {
        let seed = base32(SHA1_KEY.as_bytes());
        // RFC 4226 counter 1 is 287082; at 30 s steps, t = 30..59 is counter 1.
        assert_eq!(code_text(&seed, 59), "287082");
        let totp = Totp::parse(&secret(&seed)).unwrap();
        assert_eq!(
            (totp.algorithm(), totp.digits(), totp.period()),
            (Algorithm::Sha1, 6, 30)
        );
        // 8-digit vector 07081804 keeps its leading zero.
        let uri = format!("otpauth://totp/x?secret={seed}&digits=8");
        assert_eq!(code_text(&uri, 1111111109), "07081804");
    }

    #[test]
    fn lowercase_spaced_and_padded_seeds_are_accepted() {
        let seed = base32(SHA1_KEY.as_bytes());
        let spaced: String = seed
            .to_lowercase()
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(code_text(&format!("  {spaced}==\n"), 59), "287082");
        let uri = format!(
            "OTPAUTH://TOTP/Acme%3Aalice?issuer=Acme&secret={}&algorithm=sha1",
            spaced.replace(' ', "%20")
        );
        assert_eq!(code_text(&uri, 59), "287082");
    }

    #[test]
    fn period_changes_the_counter() {
        let seed = base32(SHA1_KEY.as_bytes());
        // period 60: t = 60..119 is counter 1.
        let uri = format!("otpauth://totp/x?secret={seed}&period=60");
        assert_eq!(code_text(&uri, 119), "287082");
    }

    #[test]
    fn errors_never_carry_the_seed() {
        let bad = "JBSWY3DPEHPK3PXP!secretpart";
        let cases = [
            (bad.to_owned(), TotpError::InvalidBase32),
            (
                format!("otpauth://totp/x?secret={bad}"),
                TotpError::InvalidBase32,
            ),
            (
                "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP".to_owned(),
                TotpError::NotTotpUri,
            ),
            (
                "otpauth://totp/x?issuer=JBSWY3DPEHPK3PXP".to_owned(),
                TotpError::MissingSecret,
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5".to_owned(),
                TotpError::UnsupportedAlgorithm("MD5".into()),
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=9".to_owned(),
                TotpError::Digits,
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0".to_owned(),
                TotpError::Period,
            ),
            ("   ".to_owned(), TotpError::Empty),
            ("A".to_owned(), TotpError::InvalidBase32),
            ("otpauth://totp/x?secret=".to_owned(), TotpError::Empty),
        ];
        for (seed, expected) in cases {
            let err = code(&secret(&seed), 59).unwrap_err();
            assert_eq!(err, expected, "{seed}");
            let message = err.to_string();
            for part in ["JBSWY3DPEHPK3PXP", "secretpart", "!"] {
                assert!(!message.contains(part), "{message}");
            }
        }
        assert_eq!(
            TotpError::InvalidBase32.to_string(),
            "the TOTP seed is not valid base32"
        );
        let err = code(
            &secret("otpauth://totp/x?secret=AAAA&algorithm=JBSWY3DPEHPK3PXP-long-value"),
            0,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("JBSWY3DPEHPK3PXP"), "{err}");
        assert!(matches!(
            code(&Secret::new(vec![0xff, 0xfe]), 0),
            Err(TotpError::NotUtf8)
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let totp = Totp::parse(&secret("JBSWY3DPEHPK3PXP")).unwrap();
        let debug = format!("{totp:?}");
        assert!(debug.contains("<redacted, 10 bytes>"), "{debug}");
        assert!(!debug.contains("72, 101"), "{debug}");
    }
}
