//! The `systemd-creds` backend: credentials systemd hands frona's unit with `LoadCredential=`,
//! `LoadCredentialEncrypted=` or `SetCredential=`, read from `$CREDENTIALS_DIRECTORY/NAME`.
//!
//! systemd decrypts them (`systemd-creds encrypt`, TPM2 or the host key) into a private
//! in-memory directory readable by the service alone, which `frona run` hides from the agent.
//! A credential's path is the credential's name: one file name, never a path, so that nothing
//! outside that directory can be named. The value is read once into a [`Secret`] (one
//! trailing newline trimmed, as for the other secret files); `--field` picks a field of a JSON
//! value. The directory is read-only: there is nothing to rotate here.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::{Backend, BackendError, BackendKind, Secret, SecretRef};

const NAME: &str = "systemd-creds";

/// systemd refuses credentials larger than this (`CREDENTIAL_SIZE_MAX`); a larger file is not
/// one it wrote.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Why the backend is not configured, as `frona credential` says it.
pub const NOT_CONFIGURED: &str = "CREDENTIALS_DIRECTORY is unset; is frona running under systemd with LoadCredential= (or LoadCredentialEncrypted=) in its unit?";

/// Where the credentials are: the `CREDENTIALS_DIRECTORY` systemd gave frona.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemdCredsConfig {
    pub dir: PathBuf,
}

/// Reads credentials from the directory systemd prepared.
#[derive(Debug)]
pub struct SystemdCreds {
    dir: PathBuf,
}

impl SystemdCreds {
    pub fn new(config: SystemdCredsConfig) -> Self {
        Self { dir: config.dir }
    }

    /// The file holding credential `name`, once `name` is proven to be a single file name.
    fn file(&self, name: &str) -> Result<PathBuf, BackendError> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }
}

/// A credential name is one file name: not empty, not `.` or `..`, no `/`, no NUL.
pub fn check_name(name: &str) -> Result<(), BackendError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is not a file name")
    } else if name.contains('/') {
        Some("contains `/`")
    } else if name.contains('\0') {
        Some("contains NUL")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(BackendError::Invalid {
            backend: NAME,
            detail: format!(
                "credential name `{}` {problem}: give the name used in LoadCredential=",
                name.escape_debug()
            ),
        }),
        None => Ok(()),
    }
}

/// Reads `path` into a [`Secret`] without following a symlink, refusing anything larger than
/// [`MAX_SIZE`]. The buffer is sized from the file first, so the value is never reallocated
/// (which would leave a copy behind in freed memory).
fn read_credential(path: &Path) -> io::Result<Secret> {
    let file = File::options()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file"));
    }
    if meta.len() > MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than systemd's 1 MiB limit",
        ));
    }
    // Bounded by MAX_SIZE above, so the conversion cannot truncate.
    let capacity = usize::try_from(meta.len()).unwrap_or(0) + 1;
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_SIZE).read_to_end(&mut bytes)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(Secret::new(std::mem::take(&mut *bytes)))
}

#[async_trait::async_trait]
impl Backend for SystemdCreds {
    fn kind(&self) -> BackendKind {
        BackendKind::SystemdCreds
    }

    async fn fetch(&self, secret: &SecretRef<'_>) -> Result<Secret, BackendError> {
        if secret.version.is_some() {
            return Err(BackendError::Unsupported {
                backend: NAME,
                operation: "pinning a version",
            });
        }
        let path = self.file(secret.path)?;
        let value = read_credential(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BackendError::NotFound {
                backend: NAME,
                path: secret.path.into(),
            },
            io::ErrorKind::PermissionDenied => BackendError::Denied {
                backend: NAME,
                path: secret.path.into(),
            },
            _ => BackendError::Read {
                backend: NAME,
                path: path.display().to_string(),
                source: e,
            },
        })?;
        secret.select(NAME, value)
    }

    /// The directory is there and this process may list it.
    async fn health(&self) -> Result<(), BackendError> {
        std::fs::read_dir(&self.dir)
            .map(drop)
            .map_err(|source| BackendError::Read {
                backend: NAME,
                path: self.dir.display().to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("frona-systemd-creds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, value: &[u8]) {
        let path = dir.join(name);
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    }

    fn backend(dir: &Path) -> SystemdCreds {
        SystemdCreds::new(SystemdCredsConfig { dir: dir.into() })
    }

    fn fetch(
        backend: &SystemdCreds,
        path: &str,
        field: Option<&str>,
    ) -> Result<Secret, BackendError> {
        let secret = SecretRef {
            path,
            field,
            version: None,
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(backend.fetch(&secret))
    }

    #[test]
    fn reads_a_credential_and_one_field_of_it() {
        let dir = dir("read");
        write(&dir, "stripe-key", b"sk_live_systemd0123456789\n");
        write(&dir, "db", br#"{"user":"app","password":"pw-0123"}"#);
        let creds = backend(&dir);
        assert_eq!(
            fetch(&creds, "stripe-key", None).unwrap().expose(),
            b"sk_live_systemd0123456789"
        );
        assert_eq!(
            fetch(&creds, "db", Some("password")).unwrap().expose(),
            b"pw-0123"
        );
        assert!(matches!(
            fetch(&creds, "db", Some("nope")),
            Err(BackendError::MissingField { .. })
        ));
        assert!(matches!(
            fetch(&creds, "absent", None),
            Err(BackendError::NotFound { .. })
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(creds.health()).unwrap();
        let pinned = SecretRef {
            path: "stripe-key",
            field: None,
            version: Some("2"),
        };
        assert!(matches!(
            runtime.block_on(creds.fetch(&pinned)),
            Err(BackendError::Unsupported { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Nothing outside the directory can be named: no separator, no dot-dot, no NUL, no
    /// empty name, and a symlink planted in the directory is not followed.
    #[test]
    fn names_outside_the_directory_are_refused() {
        let root = dir("escape");
        let creds_dir = root.join("creds");
        std::fs::create_dir(&creds_dir).unwrap();
        std::fs::write(root.join("outside"), "outside-secret").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), creds_dir.join("link")).unwrap();
        let creds = backend(&creds_dir);
        for name in ["", ".", "..", "../outside", "a/b", "/etc/passwd", "x\0y"] {
            let err = fetch(&creds, name, None).unwrap_err();
            assert!(
                matches!(err, BackendError::Invalid { .. }),
                "{name:?}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with("systemd-creds: credential name")
            );
        }
        let err = fetch(&creds, "link", None).unwrap_err();
        assert!(
            matches!(err, BackendError::Read { .. }),
            "a symlink is not followed: {err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_what_systemd_would_not_have_written() {
        let dir = dir("big");
        let big = vec![b'x'; usize::try_from(MAX_SIZE).unwrap() + 1];
        write(&dir, "big", &big);
        std::fs::create_dir(dir.join("sub")).unwrap();
        let creds = backend(&dir);
        assert!(matches!(
            fetch(&creds, "big", None),
            Err(BackendError::Read { .. })
        ));
        assert!(matches!(
            fetch(&creds, "sub", None),
            Err(BackendError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_kind_is_named_systemd_creds_everywhere() {
        let kind: BackendKind = "systemd-creds".parse().unwrap();
        assert_eq!(kind, BackendKind::SystemdCreds);
        assert_eq!(kind.to_string(), "systemd-creds");
        assert_eq!(serde_json::to_string(&kind).unwrap(), r#""systemd-creds""#);
        assert_eq!(
            frona_policy::yaml::from_str::<BackendKind>("systemd-creds").unwrap(),
            kind
        );
        assert!(BackendKind::ALL.contains(&kind));
        let unknown = "systemd".parse::<BackendKind>().unwrap_err();
        assert!(unknown.contains("systemd-creds"), "{unknown}");
    }

    #[test]
    fn health_fails_plainly_without_the_directory() {
        let creds = backend(Path::new("/nonexistent/frona-credentials"));
        let err = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(creds.health())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("systemd-creds: cannot read `/nonexistent/frona-credentials`"),
            "{err}"
        );
    }
}
