//! The one type every secret value lives in.

use std::fmt;

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// A secret value: zeroized on drop, redacted in `Debug`, no `Display`, not `Serialize`.
/// Read it with [`Secret::expose`] only where it must leave frona.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Takes ownership of a string's bytes (the string is consumed, not copied).
    pub fn from_string(value: String) -> Self {
        Self::new(value.into_bytes())
    }

    /// The value itself. Every caller is a place the value leaves frona's custody.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First 8 hex digits of the value's SHA-256: enough to tell two values apart in
    /// `frona credential test`, useless for recovering the value.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.expose())[..4])
    }
}

/// A JSON string read straight into a `Secret` (the parsed `String` is moved, not copied).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::from_string)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_fingerprint_is_stable() {
        let secret = Secret::from_string("hunter2-value".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted, 13 bytes>)");
        assert_eq!(secret.fingerprint().len(), 8);
        assert_eq!(
            secret.fingerprint(),
            Secret::from_string("hunter2-value".into()).fingerprint()
        );
        assert_ne!(
            secret.fingerprint(),
            Secret::from_string("other".into()).fingerprint()
        );
    }
}
