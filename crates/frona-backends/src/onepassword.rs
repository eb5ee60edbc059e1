//! 1Password Connect (REST): `op://vault/item/field` references, looked up by name or id with a
//! bearer token, as the Connect server's API documents them.
//!
//! A reference is `op://VAULT/ITEM/FIELD` or `op://VAULT/ITEM/SECTION/FIELD` (the registry's
//! `--field` may carry the field instead). Vaults and items are matched by id or by exact
//! name (`filter=name eq "…"` / `filter=title eq "…"`); fields by label or id.

use async_trait::async_trait;
use serde::Deserialize;

use crate::Limits;
use crate::http::Http;
use crate::{Backend, BackendError, BackendKind, Secret, SecretRef};

const NAME: &str = "onepassword";

/// Where the Connect server is and the token for it.
#[derive(Debug)]
pub struct OnePasswordConfig {
    pub host: String,
    pub token: Secret,
}

#[derive(Debug)]
pub struct OnePassword {
    http: Http,
    token: Secret,
}

#[derive(Deserialize)]
struct Named {
    id: String,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    fields: Vec<Field>,
    #[serde(default)]
    sections: Vec<Section>,
}

#[derive(Deserialize)]
struct Field {
    id: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    value: Option<Secret>,
    #[serde(default)]
    section: Option<Named>,
}

#[derive(Deserialize)]
struct Section {
    id: String,
    #[serde(default)]
    label: Option<String>,
}

/// `op://vault/item[/section]/field`, or `vault/item` with the field given separately.
struct Reference<'a> {
    vault: &'a str,
    item: &'a str,
    section: Option<&'a str>,
    field: &'a str,
}

fn parse<'a>(secret: &'a SecretRef<'_>) -> Result<Reference<'a>, BackendError> {
    let path = secret.path.strip_prefix("op://").unwrap_or(secret.path);
    let parts: Vec<&str> = path.split('/').collect();
    let bad = || BackendError::Invalid {
        backend: NAME,
        detail: format!(
            "`{}` is not op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD",
            secret.path
        ),
    };
    match (parts.as_slice(), secret.field) {
        ([vault, item], Some(field)) => Ok(Reference {
            vault,
            item,
            section: None,
            field,
        }),
        ([vault, item, field], None) => Ok(Reference {
            vault,
            item,
            section: None,
            field,
        }),
        ([vault, item, section, field], None) => Ok(Reference {
            vault,
            item,
            section: Some(section),
            field,
        }),
        _ => Err(bad()),
    }
    .and_then(|r| {
        if [r.vault, r.item, r.field].iter().any(|s| s.is_empty()) {
            Err(bad())
        } else {
            Ok(r)
        }
    })
}

/// 1Password ids are 26 lowercase base32 characters.
fn looks_like_id(text: &str) -> bool {
    text.len() == 26
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl OnePassword {
    pub fn new(config: OnePasswordConfig, limits: Limits) -> Result<Self, BackendError> {
        Ok(Self {
            http: Http::new(NAME, &config.host, limits)?,
            token: config.token,
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(self.token.expose()))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<T, BackendError> {
        let body = self
            .http
            .send(what, || {
                self.http
                    .client
                    .get(self.http.url(path))
                    .header("Authorization", self.bearer())
                    .query(query)
            })
            .await?;
        body.json(NAME, what)
    }

    /// The id of the vault or item named `name` (or `name` itself when it is an id).
    async fn id_of(
        &self,
        list_path: &str,
        key: &str,
        name: &str,
        what: &str,
    ) -> Result<String, BackendError> {
        if looks_like_id(name) {
            return Ok(name.to_owned());
        }
        let filter = format!("{key} eq \"{}\"", name.replace('"', "\\\""));
        let found: Vec<Named> = self.get(list_path, &[("filter", filter)], what).await?;
        match found.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(BackendError::NotFound {
                backend: NAME,
                path: what.to_owned(),
            }),
            _ => Err(BackendError::Invalid {
                backend: NAME,
                detail: format!("`{what}` is ambiguous: use its id"),
            }),
        }
    }
}

#[async_trait]
impl Backend for OnePassword {
    fn kind(&self) -> BackendKind {
        BackendKind::OnePassword
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        let r = parse(secret)?;
        let vault = self.id_of("/v1/vaults", "name", r.vault, r.vault).await?;
        let item_name = format!("{}/{}", r.vault, r.item);
        let item = self
            .id_of(
                &format!("/v1/vaults/{vault}/items"),
                "title",
                r.item,
                &item_name,
            )
            .await?;
        let item: Item = self
            .get(&format!("/v1/vaults/{vault}/items/{item}"), &[], &item_name)
            .await?;
        let section_id = match r.section {
            None => None,
            Some(wanted) => Some(
                item.sections
                    .iter()
                    .find(|s| s.id == wanted || s.label.as_deref() == Some(wanted))
                    .map(|s| s.id.clone())
                    .ok_or_else(|| BackendError::MissingField {
                        backend: NAME,
                        path: item_name.clone(),
                        field: wanted.into(),
                    })?,
            ),
        };
        item.fields
            .into_iter()
            .find(|f| {
                (f.id == r.field || f.label.as_deref() == Some(r.field))
                    && section_id
                        .as_ref()
                        .is_none_or(|s| f.section.as_ref().is_some_and(|fs| &fs.id == s))
            })
            .and_then(|f| f.value)
            .ok_or_else(|| BackendError::MissingField {
                backend: NAME,
                path: item_name,
                field: r.field.into(),
            })
    }

    /// The server's `/health`, then an authenticated vault listing (proves the token).
    async fn health(&self) -> Result<(), BackendError> {
        self.http
            .send("/health", || self.http.client.get(self.http.url("/health")))
            .await?;
        let _: Vec<Named> = self.get("/v1/vaults", &[], "vaults").await?;
        Ok(())
    }
}
