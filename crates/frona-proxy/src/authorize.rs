//! How an HTTP front end gets one credential's value for one request: the core decides,
//! records and issues ([`Broker::authorize`]); this turns what it says into the answer the
//! client gets, and insists on the one value a header or a query parameter can carry.

use frona_backends::Secret;
use frona_backends::registry::Credential;
use frona_broker::audit::{AuditEvent, HttpCall, HttpDecision};
use frona_broker::credentials::Leases;
use frona_broker::{Broker, Call, Decision, Refused};
use http::StatusCode;

use crate::http::{Reason, Refusal};

/// The value to attach for `call`, and what to revoke once the request is done; or the answer
/// refusing it. The decision is recorded as `kind: http` with `fields`, on disk before this
/// returns a value.
pub(crate) async fn one_value(
    broker: &Broker,
    call: Call,
    credential: Credential,
    fields: HttpCall,
) -> Result<(Secret, Leases), Refusal> {
    let record = move |decision: &Decision| {
        AuditEvent::Http(HttpDecision {
            call: fields,
            decision: decision.effect.into(),
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
            grant: decision.grant.clone(),
        })
    };
    let mut issued = broker
        .authorize(call, credential, record)
        .await
        .map_err(refusal)?;
    if issued.values.len() != 1 {
        broker.credentials.revoke_later(issued.leases);
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            Reason::CredentialUnavailable,
            "the credential issues several values; the proxy attaches one",
        ));
    }
    let (_, value) = issued.values.remove(0);
    Ok((value, issued.leases))
}

/// The answer to a call the core did not let through.
fn refusal(refused: Refused) -> Refusal {
    let message = refused.to_string();
    match refused {
        Refused::Denied(decision) => Refusal::forbidden(decision.rule.as_deref(), message),
        Refused::Credential(_) => Refusal::new(
            StatusCode::BAD_GATEWAY,
            Reason::CredentialUnavailable,
            message,
        ),
        Refused::AuditUnavailable => Refusal::audit_unavailable(),
        Refused::Internal => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Reason::Unavailable,
            message,
        ),
    }
}
