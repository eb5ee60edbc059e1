//! `kind: aws-sts`: an IAM role that `frona run --net proxy` serves STS sessions of at the
//! container credentials endpoint. The path is the role's ARN, and only the AWS backend can
//! assume it; nothing else about the registration applies (no route, no host binding, no
//! field or version).

use super::{Credential, RegistryError};
use crate::BackendKind;

/// Whether `arn` is an IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub(crate) fn role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
    !partition.is_empty()
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| {
            !name.is_empty()
                && !name.ends_with('/')
                && name.len() <= 512
                && name.chars().all(name_char)
        })
}

/// The checks [`Credential::validate`] adds for `kind: aws-sts`.
pub(super) fn check(credential: &Credential) -> Result<(), RegistryError> {
    let invalid = |why: String| Err(RegistryError::Invalid(why));
    if credential.backend != BackendKind::Aws {
        return invalid(format!(
            "kind aws-sts assumes an AWS role: the backend must be aws, not {}",
            credential.backend
        ));
    }
    if !role_arn(&credential.path) {
        return invalid(format!(
            "kind aws-sts needs a role ARN as its path (arn:aws:iam::ACCOUNT:role/NAME), not `{}`",
            credential.path
        ));
    }
    if credential.field.is_some() || credential.version.is_some() {
        return invalid("kind aws-sts has no field or version: it names a role".into());
    }
    if credential.route.is_some() || !credential.inject_hosts.is_empty() {
        return invalid(
            "kind aws-sts is served to AWS SDKs at the container credentials endpoint; it has no route and is bound to no host"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::CredentialKind;

    fn sts(backend: BackendKind, path: &str) -> Credential {
        Credential {
            kind: CredentialKind::AwsSts,
            ..Credential::new("aws", backend, path)
        }
    }

    #[test]
    fn role_arns() {
        for good in [
            "arn:aws:iam::123456789012:role/agent",
            "arn:aws-us-gov:iam::123456789012:role/team/ci/deploy+x@y",
        ] {
            assert!(role_arn(good), "{good}");
        }
        for bad in [
            "",
            "agent",
            "arn:aws:iam::123456789012:user/agent",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::12345678901:role/agent",
            "arn:aws:sts::123456789012:role/agent",
            "arn:aws:iam:eu-west-1:123456789012:role/agent",
            "arn::iam::123456789012:role/agent",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(!role_arn(bad), "{bad}");
        }
    }

    #[test]
    fn needs_the_aws_backend_and_a_role() {
        let arn = "arn:aws:iam::123456789012:role/agent";
        assert!(sts(BackendKind::Aws, arn).validate().is_ok());
        let err = sts(BackendKind::Vault, arn).validate().unwrap_err();
        assert!(err.to_string().contains("backend must be aws"), "{err}");
        assert!(sts(BackendKind::Aws, "prod/db").validate().is_err());
        let mut field = sts(BackendKind::Aws, arn);
        field.field = Some("x".into());
        assert!(field.validate().is_err());
        let mut bound = sts(BackendKind::Aws, arn);
        bound.inject_hosts = vec!["sts.amazonaws.com".into()];
        assert!(bound.validate().is_err());
    }

    #[test]
    fn serialised_as_aws_sts() {
        let text = frona_policy::yaml::to_string(&sts(
            BackendKind::Aws,
            "arn:aws:iam::123456789012:role/agent",
        ))
        .unwrap();
        assert!(text.contains("kind: aws-sts"), "{text}");
        let back: Credential = frona_policy::yaml::from_str(&text).unwrap();
        assert_eq!(back.kind, CredentialKind::AwsSts);
        assert_eq!(CredentialKind::AwsSts.to_string(), "aws-sts");
    }
}
