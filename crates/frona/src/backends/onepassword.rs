//! 1Password Connect: `backends.onepassword`, `FRONA_CREDENTIAL_1PASSWORD_*` or Connect's own
//! `OP_CONNECT_*`.

use std::path::PathBuf;

use super::{Backend, Inputs, Key, section};
use crate::failure::Failure;

pub const ONEPASSWORD_HOST: &str = "FRONA_CREDENTIAL_1PASSWORD_HOST";
pub const ONEPASSWORD_TOKEN: &str = "FRONA_CREDENTIAL_1PASSWORD_TOKEN";
pub const OP_CONNECT_HOST: &str = "OP_CONNECT_HOST";
pub const OP_CONNECT_TOKEN: &str = "OP_CONNECT_TOKEN";

section! {
    /// `backends.onepassword`.
    host: String,
    token_file: PathBuf,
}

pub const BACKEND: Backend = Backend {
    name: "onepassword",
    keys: &[
        Key::plain("host", &[ONEPASSWORD_HOST, OP_CONNECT_HOST]),
        Key::secret("token_file", &[ONEPASSWORD_TOKEN, OP_CONNECT_TOKEN]),
    ],
    build,
};

#[cfg(not(feature = "onepassword"))]
fn build(_: &Inputs<'_>, _: &mut frona_backends::config::BackendsConfig) -> Result<(), Failure> {
    Ok(())
}

/// The host and a token from the variables, else the config file (and, for the token, the
/// `onepassword-token` systemd credential).
#[cfg(feature = "onepassword")]
fn build(
    inputs: &Inputs<'_>,
    config: &mut frona_backends::config::BackendsConfig,
) -> Result<(), Failure> {
    use super::{env_text, secret_from};
    use crate::systemd::credentials as creds;

    let Inputs { env, file, .. } = *inputs;
    let section = &file.onepassword;
    let host = env_text(env, &[ONEPASSWORD_HOST, OP_CONNECT_HOST]).or_else(|| section.host.clone());
    let token = secret_from(
        env,
        &[ONEPASSWORD_TOKEN, OP_CONNECT_TOKEN],
        section
            .token_file
            .clone()
            .or_else(|| creds::file(env, creds::ONEPASSWORD_TOKEN))
            .as_ref(),
    )?;
    config.onepassword = host
        .zip(token)
        .map(|(host, token)| frona_backends::onepassword::OnePasswordConfig { host, token });
    Ok(())
}
