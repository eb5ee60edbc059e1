//! Every answer frona's HTTP front ends make themselves rather than pass on: a status, a
//! [`Reason`] (the `x-frona-error` header, a wire contract that clients and tests match on,
//! each value written here once), and a message. Three renderings, one per kind of client:
//! plain text for the egress proxy and terminated tunnels, `{"error"}` JSON for the credential
//! proxy, and `{"Code","Message"}` for the AWS SDKs. Every one carries `x-frona: refused`, so
//! that a client can tell frona's answer from the upstream's.

use std::borrow::Cow;

use http::StatusCode;
use http::header::{self, HeaderValue};
use serde_json::json;

use super::{Body, Response};

/// The header that says why frona refused.
pub const ERROR_HEADER: &str = "x-frona-error";

/// Why frona answered itself: the value of `x-frona-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `denied by rule "NAME"` (or `denied by a rule` when the name is no header value).
    DeniedByRule(String),
    /// `not allowed`: no rule permits it.
    NotAllowed,
    BadRequest,
    BadHost,
    BadPath,
    BadTarget,
    BadValue,
    WrongHost,
    CannotResolve,
    UpstreamUnreachable,
    UpstreamFailed,
    AuditUnavailable,
    UpgradeRefused,
    CredentialUnavailable,
    NoInterception,
    NotFound,
    NotServed,
    MethodNotAllowed,
    NoToken,
    WrongToken,
    Unavailable,
    IssueFailed,
    TooLarge,
}

impl Reason {
    /// A denial by `rule`, or by no rule (default deny).
    pub fn denied(rule: Option<&str>) -> Self {
        match rule {
            Some(rule) => Reason::DeniedByRule(rule.to_owned()),
            None => Reason::NotAllowed,
        }
    }

    /// The header's text.
    pub fn header(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Reason::DeniedByRule(rule) => {
                let text = format!("denied by rule \"{rule}\"");
                return if HeaderValue::from_str(&text).is_ok() {
                    Cow::Owned(text)
                } else {
                    Cow::Borrowed("denied by a rule")
                };
            }
            Reason::NotAllowed => "not allowed",
            Reason::BadRequest => "bad request",
            Reason::BadHost => "bad host",
            Reason::BadPath => "bad path",
            Reason::BadTarget => "bad target",
            Reason::BadValue => "bad value",
            Reason::WrongHost => "wrong host",
            Reason::CannotResolve => "cannot resolve",
            Reason::UpstreamUnreachable => "upstream unreachable",
            Reason::UpstreamFailed => "upstream failed",
            Reason::AuditUnavailable => "audit log unavailable",
            Reason::UpgradeRefused => "upgrade refused",
            Reason::CredentialUnavailable => "credential unavailable",
            Reason::NoInterception => "no interception",
            Reason::NotFound => "not found",
            Reason::NotServed => "not served",
            Reason::MethodNotAllowed => "method not allowed",
            Reason::NoToken => "no token",
            Reason::WrongToken => "wrong token",
            Reason::Unavailable => "unavailable",
            Reason::IssueFailed => "issue failed",
            Reason::TooLarge => "too large",
        })
    }
}

/// An answer frona makes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: Reason,
    pub message: String,
}

/// The audit log could not be written: nothing goes out.
pub const AUDIT_UNAVAILABLE: &str = "the audit log cannot be written; failing closed";

impl Refusal {
    pub fn new(status: StatusCode, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    /// `403` for a denial.
    pub fn forbidden(rule: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, Reason::denied(rule), message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Reason::BadRequest, message)
    }

    /// `503`: the audit log cannot be written.
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::AuditUnavailable,
            AUDIT_UNAVAILABLE,
        )
    }

    /// `frona: MESSAGE` as plain text (the egress proxy, terminated tunnels).
    pub fn text(&self) -> Response {
        self.response(
            "text/plain; charset=utf-8",
            format!("frona: {}\n", self.message).into_bytes(),
        )
    }

    /// [`Refusal::text`], and the connection closes after it (the egress proxy's own
    /// connections; a terminated tunnel stays open).
    pub fn text_closing(&self) -> Response {
        let mut response = self.text();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// `{"error": MESSAGE}` (the credential proxy, whose clients are scripts and SDKs).
    pub fn json(&self) -> Response {
        let body = json!({ "error": self.message }).to_string();
        self.response("application/json", body.into_bytes())
    }

    /// `{"Code": …, "Message": "frona: MESSAGE"}`, which the AWS SDKs show, never cached.
    pub fn aws(&self) -> Response {
        let code = match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "AccessDenied",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            _ => "ServiceUnavailable",
        };
        let body = json!({"Code": code, "Message": format!("frona: {}", self.message)});
        let mut response = self.response("application/json", body.to_string().into_bytes());
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn response(&self, content_type: &'static str, body: Vec<u8>) -> Response {
        let mut response = http::Response::new(Body::full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-frona", HeaderValue::from_static("refused"));
        headers.insert(
            ERROR_HEADER,
            HeaderValue::from_str(&self.reason.header())
                .unwrap_or_else(|_| HeaderValue::from_static("refused")),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rendering_says_who_refused_and_why() {
        let refusal = Refusal::forbidden(Some("no-admin"), "denied by rule `no-admin`: admin");
        let text = refusal.text_closing();
        assert_eq!(text.status(), StatusCode::FORBIDDEN);
        assert_eq!(text.headers()["x-frona"], "refused");
        assert_eq!(text.headers()[ERROR_HEADER], "denied by rule \"no-admin\"");
        assert_eq!(text.headers()[header::CONNECTION], "close");
        let json = refusal.json();
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(json.headers()[ERROR_HEADER], "denied by rule \"no-admin\"");
        let aws = Refusal::new(StatusCode::UNAUTHORIZED, Reason::NoToken, "send it").aws();
        assert_eq!(aws.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(aws.headers()[ERROR_HEADER], "no token");
    }

    #[test]
    fn a_rule_name_that_is_no_header_value_is_not_quoted() {
        assert_eq!(Reason::denied(Some("a\nb")).header(), "denied by a rule");
        assert_eq!(Reason::denied(None).header(), "not allowed");
    }
}
