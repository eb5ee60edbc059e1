//! The path a policy decides on must be the path the upstream sees.

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has an encoded separator or a dot segment")]
    Escape,
    #[error("the path has a malformed percent escape")]
    MalformedEscape,
    #[error("the path is not UTF-8")]
    NotUtf8,
    #[error("the path has control characters")]
    Control,
}

/// Percent-decodes `path` for the policy. Refuses what would let the upstream see a different
/// path than the policy did: encoded `/`, `\` or `.`, dot segments, invalid UTF-8, controls.
pub fn checked_path(path: &str) -> Result<String, PathError> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
        || path.contains('\\')
        || path.split('/').any(|s| s == "." || s == "..")
    {
        return Err(PathError::Escape);
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::MalformedEscape)?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_sees_the_path_the_upstream_sees() {
        assert_eq!(checked_path("/v1/a%20b").unwrap(), "/v1/a b");
        assert_eq!(checked_path("/v1/caf%C3%A9").unwrap(), "/v1/café");
        for escape in [
            "/v1/%2e%2e/admin",
            "/v1/../admin",
            "/v1/./x",
            "/a%2Fb",
            "/a\\b",
            "/a%00",
        ] {
            assert_eq!(checked_path(escape), Err(PathError::Escape), "{escape}");
        }
        assert_eq!(checked_path("/a%zz"), Err(PathError::MalformedEscape));
        assert_eq!(checked_path("/a%"), Err(PathError::MalformedEscape));
        assert_eq!(checked_path("/a%ff"), Err(PathError::NotUtf8));
        assert_eq!(checked_path("/a%0a"), Err(PathError::Control));
    }
}
