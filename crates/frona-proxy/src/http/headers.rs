//! Which headers cross a proxy: never the hop-by-hop and proxy headers
//! ([`frona_backends::registry::UNFORWARDED_HEADERS`], the list the registry also refuses as
//! injection targets), nor those a `Connection` header names; and what comes back has every
//! value frona put on the wire redacted.

use base64::Engine as _;
use frona_backends::Secret;
use frona_backends::registry::UNFORWARDED_HEADERS;
use frona_broker::redact::Redactor;
use http::header::{self, HeaderMap, HeaderValue};

/// Copies `from` without hop-by-hop headers (also those named in `Connection`).
pub fn forwardable(from: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let lower = name.as_str();
        if UNFORWARDED_HEADERS.contains(&lower) || named.iter().any(|n| n == lower) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The forwardable headers of an upstream response, each value run through `template`.
pub fn redacted_headers(from: &HeaderMap, template: &Redactor) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in forwardable(from) {
        let Some(name) = name else { continue };
        let mut redactor = template.clone();
        let mut bytes = redactor.push(value.as_bytes());
        bytes.extend(redactor.finish());
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            out.append(name, value);
        }
    }
    out
}

/// The decoded `user:password` of an `Authorization: Basic` value.
pub fn basic_credentials(value: &HeaderValue) -> Option<Secret> {
    let bytes = value.as_bytes();
    let encoded = bytes
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
        .map(|_| bytes[6..].trim_ascii())?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .map(Secret::new)
}
