//! The path a policy decides on must be the path the upstream sees.

/// Percent-decodes `path` for the policy. Refuses what would let the upstream see a different
/// path than the policy did: encoded `/`, `\` or `.`, dot segments, invalid UTF-8, controls.
pub fn checked_path(path: &str) -> Result<String, String> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
        || path.contains('\\')
        || path.split('/').any(|s| s == "." || s == "..")
    {
        return Err("the path has an encoded separator or a dot segment".into());
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
                .ok_or("the path has a malformed percent escape")?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| "the path is not UTF-8")?;
    if decoded.chars().any(char::is_control) {
        return Err("the path has control characters".into());
    }
    Ok(decoded)
}
