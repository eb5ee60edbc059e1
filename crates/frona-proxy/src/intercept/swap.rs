//! Swapping a placeholder for its value in the places its binding names: credential headers
//! (inside `Authorization: Basic` too) and named query parameters. Nothing else is touched.

use base64::Engine as _;
use frona_backends::Secret;
use frona_backends::registry::Credential;
use http::header::{HeaderMap, HeaderValue};

use super::placeholder::contains;
use crate::http::basic_credentials;

/// The value cannot travel in the header its placeholder was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the credential is not a valid header value")]
pub(super) struct NotAHeaderValue;

/// `haystack` with every `from` replaced by `to`.
pub(super) fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + to.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Swaps `placeholder` for `value` in the values of the headers `credential` names (inside
/// `Basic` credentials too); returns every new header value made, for the redactor.
pub(super) fn swap_headers(
    headers: &mut HeaderMap,
    credential: &Credential,
    placeholder: &[u8],
    value: &[u8],
) -> Result<Vec<Secret>, NotAHeaderValue> {
    let mut forms = Vec::new();
    for (name, slot) in headers.iter_mut() {
        if !credential.swaps_in_header(name.as_str()) {
            continue;
        }
        let swapped = if contains(slot.as_bytes(), placeholder) {
            Secret::new(replace(slot.as_bytes(), placeholder, value))
        } else if let Some(pair) =
            basic_credentials(slot).filter(|p| contains(p.expose(), placeholder))
        {
            let pair = Secret::new(replace(pair.expose(), placeholder, value));
            let mut encoded = b"Basic ".to_vec();
            encoded.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(pair.expose())
                    .into_bytes(),
            );
            forms.push(pair);
            Secret::new(encoded)
        } else {
            continue;
        };
        let mut new = HeaderValue::from_bytes(swapped.expose()).map_err(|_| NotAHeaderValue)?;
        new.set_sensitive(true);
        *slot = new;
        forms.push(swapped);
    }
    Ok(forms)
}

/// Swaps `placeholder` for `value` in the values of the query parameters `names`; the other
/// parameters keep theirs.
pub(super) fn swap_query(
    query: &str,
    names: &[String],
    placeholder: &[u8],
    value: &[u8],
) -> (String, Option<Secret>) {
    let encoded: String = url::form_urlencoded::byte_serialize(value).collect();
    let mut used = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, v))
                if names.iter().any(|n| n == name) && contains(v.as_bytes(), placeholder) =>
            {
                used = true;
                let swapped = replace(v.as_bytes(), placeholder, encoded.as_bytes());
                format!("{name}={}", String::from_utf8_lossy(&swapped))
            }
            _ => part.to_owned(),
        })
        .collect();
    (
        parts.join("&"),
        used.then(|| Secret::new(encoded.into_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    fn credential() -> Credential {
        Credential {
            inject_hosts: vec!["api.example.com".into()],
            ..Credential::new("gh", frona_backends::BackendKind::Local, "p")
        }
    }

    #[test]
    fn swaps_in_headers_and_basic_credentials() {
        let mut credential = credential();
        credential.inject_headers = vec!["X-Other".into()];
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer ph_123"),
        );
        headers.insert("x-other", HeaderValue::from_static("ph_123 and ph_123"));
        headers.insert("x-plain", HeaderValue::from_static("nothing"));
        headers.insert("user-agent", HeaderValue::from_static("ua ph_123"));
        let forms = swap_headers(&mut headers, &credential, b"ph_123", b"REAL").unwrap();
        assert_eq!(headers[header::AUTHORIZATION], "Bearer REAL");
        assert_eq!(headers["x-other"], "REAL and REAL");
        assert_eq!(headers["x-plain"], "nothing");
        assert_eq!(
            headers["user-agent"], "ua ph_123",
            "a header the binding does not name keeps the placeholder"
        );
        assert_eq!(forms.len(), 2);
        assert!(headers[header::AUTHORIZATION].is_sensitive());

        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:ph_123");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        swap_headers(&mut headers, &credential, b"ph_123", b"REAL").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("x-access-token:REAL");
        assert_eq!(
            headers[header::AUTHORIZATION],
            format!("Basic {expected}").as_str()
        );
    }

    /// For any request: after the swap no credential header carries the placeholder, every
    /// other header is as it was, and the value appears only where a placeholder was.
    #[test]
    fn swapping_changes_credential_headers_only() {
        use proptest::prelude::*;
        let names = [
            "authorization",
            "x-api-key",
            "user-agent",
            "x-other",
            "cookie",
        ];
        let value = proptest::string::string_regex("[A-Za-z0-9]{8,40}").unwrap();
        let text = || proptest::string::string_regex("[ -~]{0,40}").unwrap();
        proptest!(ProptestConfig { cases: 256, ..ProptestConfig::default() }, |(
            value in value,
            parts in proptest::collection::vec((0..names.len(), text(), any::<bool>(), text()), 0..6),
        )| {
            let placeholder = "ph_Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9";
            prop_assume!(!value.contains("ph_"));
            let credential = credential();
            let mut headers = HeaderMap::new();
            for (name, before, with, after) in &parts {
                let text = format!("{before}{}{after}", if *with { placeholder } else { "" });
                if let Ok(v) = HeaderValue::from_str(text.trim()) {
                    headers.append(names[*name], v);
                }
            }
            let original = headers.clone();
            swap_headers(&mut headers, &credential, placeholder.as_bytes(), value.as_bytes())
                .unwrap();
            for name in names {
                let now: Vec<_> = headers.get_all(name).iter().collect();
                let was: Vec<_> = original.get_all(name).iter().collect();
                prop_assert_eq!(now.len(), was.len());
                for (now, was) in now.iter().zip(&was) {
                    if credential.swaps_in_header(name) {
                        prop_assert!(!contains(now.as_bytes(), placeholder.as_bytes()));
                        let expected = replace(was.as_bytes(), placeholder.as_bytes(), value.as_bytes());
                        prop_assert_eq!(now.as_bytes(), &expected[..]);
                    } else {
                        prop_assert_eq!(now, was);
                    }
                }
            }
        });
    }

    #[test]
    fn swaps_only_the_named_query_parameters() {
        let names = vec!["key".to_owned()];
        let (query, form) = swap_query("a=1&key=ph_1&other=ph_1", &names, b"ph_1", b"v a+l");
        assert_eq!(query, "a=1&key=v+a%2Bl&other=ph_1");
        assert_eq!(form.unwrap().expose(), b"v+a%2Bl");
        let (query, form) = swap_query("a=1", &names, b"ph_1", b"v");
        assert_eq!(query, "a=1");
        assert!(form.is_none());
    }
}
