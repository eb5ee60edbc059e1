//! The embedded secret store: one JSON file of AES-256-GCM ciphertexts, so that frona works
//! with no secret manager at all.
//!
//! - Key, first that applies: `FRONA_MASTER_KEY` (32 bytes, hex or base64), a passphrase
//!   (`FRONA_PASSPHRASE` or a prompt; Argon2id with the salt kept in the file), or a key file
//!   (`$XDG_CONFIG_HOME/frona/master.key`, 32 random bytes, created 0600 on first use).
//! - Each value is sealed with a fresh 96-bit nonce and its name as associated data, so a
//!   ciphertext moved to another name does not open. A check value tells a wrong key from a
//!   damaged file.
//! - Writes take an exclusive `flock`, re-read, and replace the file atomically (temp file in
//!   the same directory, fsync, rename, fsync of the directory); readers never lock.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::Secret;

const FORMAT: &str = "frona-local-store/1";
const CHECK_NAME: &str = "\0check";
const CHECK_VALUE: &[u8] = b"frona local store key check";

/// Where the key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    MasterKey,
    Passphrase,
    KeyFile,
}

/// What the caller knows about the key (from the environment, a prompt, the config dir).
#[derive(Debug, Default)]
pub struct KeyInput {
    /// `FRONA_MASTER_KEY`.
    pub master_key: Option<Secret>,
    /// `FRONA_PASSPHRASE`, or what the user typed at a prompt.
    pub passphrase: Option<Secret>,
    /// The key file to read, or create when neither of the above is given.
    pub key_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local store: FRONA_MASTER_KEY must be 32 bytes as 64 hex digits or base64")]
    BadMasterKey,
    #[error("local store: the key in `{}` is not 32 bytes", path.display())]
    BadKeyFile { path: PathBuf },
    #[error("local store: the key file `{}` is readable by others; run `chmod 600` on it", path.display())]
    KeyFileMode { path: PathBuf },
    #[error("local store: `{}` was created with a passphrase; set FRONA_PASSPHRASE (or, under systemd, load the `frona-passphrase` credential)", path.display())]
    NeedsPassphrase { path: PathBuf },
    #[error("local store: the {key:?} key does not open `{}` (wrong key, or the file was created with another one)", path.display())]
    WrongKey { path: PathBuf, key: KeySource },
    #[error("local store: `{}` is damaged: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("local store: no secret named `{name}` (add it with `frona secret set {name}`)")]
    NoSuchSecret { name: String },
    #[error("local store: cannot use `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("local store: cannot derive the key from the passphrase")]
    Kdf,
    #[error("local store: no randomness from the operating system")]
    Random,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(flatten)]
    sealed: Sealed,
    version: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: String,
    key_source: KeySource,
    /// Argon2id salt, for a passphrase key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    check: Sealed,
    secrets: BTreeMap<String, Entry>,
}

/// Name and version of a stored secret (never its value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    pub name: String,
    pub version: u64,
}

/// An opened store: the file path and the key that opens it.
pub struct LocalStore {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    source: KeySource,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("path", &self.path)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn random<const N: usize>() -> Result<[u8; N], LocalError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| LocalError::Random)?;
    Ok(bytes)
}

fn parse_master_key(text: &[u8]) -> Result<Zeroizing<[u8; 32]>, LocalError> {
    let text = Zeroizing::new(String::from_utf8_lossy(text).trim().to_owned());
    let bytes = Zeroizing::new(
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect::<Vec<u8>>()
        } else {
            B64.decode(text.as_bytes())
                .map_err(|_| LocalError::BadMasterKey)?
        },
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| LocalError::BadMasterKey)?;
    Ok(Zeroizing::new(key))
}

fn derive_from_passphrase(
    passphrase: &Secret,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, LocalError> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::default()
        .hash_password_into(passphrase.expose(), salt, key.as_mut())
        .map_err(|_| LocalError::Kdf)?;
    Ok(key)
}

/// Reads the key file, or creates it (0600, in a 0700 directory) when it does not exist.
fn key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, LocalError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let mode = std::fs::metadata(path)
                .map_err(io_err(path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(LocalError::KeyFileMode {
                    path: path.to_path_buf(),
                });
            }
            let key: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| LocalError::BadKeyFile {
                        path: path.to_path_buf(),
                    })?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Zeroizing::new(random::<32>()?);
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            // Written under a temporary name and linked into place, so that a concurrent first
            // use sees either no key file or a whole one; the loser of the race reads the winner's.
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            file.write_all(key.as_ref())
                .and_then(|()| file.sync_all())
                .map_err(io_err(&tmp))?;
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(path),
                Err(e) => Err(io_err(path)(e)),
            }
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

fn seal(key: &[u8; 32], name: &str, plaintext: &[u8]) -> Result<Sealed, LocalError> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = random::<12>()?;
    let aad = [FORMAT.as_bytes(), b"\0", name.as_bytes()].concat();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| LocalError::Random)?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    })
}

/// `None` when the key or the associated name does not match.
fn open(key: &[u8; 32], name: &str, sealed: &Sealed) -> Option<Secret> {
    let nonce = B64.decode(&sealed.nonce).ok().filter(|n| n.len() == 12)?;
    let ciphertext = B64.decode(&sealed.ciphertext).ok()?;
    let aad = [FORMAT.as_bytes(), b"\0", name.as_bytes()].concat();
    let plain = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .ok()?;
    Some(Secret::new(plain))
}

impl LocalStore {
    /// Opens the store at `path` (which may not exist yet) with the key `input` provides.
    pub fn open(path: impl Into<PathBuf>, input: &KeyInput) -> Result<Self, LocalError> {
        let path = path.into();
        let existing = Self::read_file(&path)?;
        let (key, source) = match (&input.master_key, &input.passphrase, &existing) {
            (Some(master), _, _) => (parse_master_key(master.expose())?, KeySource::MasterKey),
            (None, passphrase, Some(file)) if file.key_source == KeySource::Passphrase => {
                let passphrase = passphrase
                    .as_ref()
                    .ok_or(LocalError::NeedsPassphrase { path: path.clone() })?;
                let salt = file
                    .salt
                    .as_deref()
                    .and_then(|s| B64.decode(s).ok())
                    .ok_or_else(|| LocalError::Damaged {
                        path: path.clone(),
                        detail: "passphrase store without salt".into(),
                    })?;
                (
                    derive_from_passphrase(passphrase, &salt)?,
                    KeySource::Passphrase,
                )
            }
            (None, Some(passphrase), None) => {
                // A new store with a passphrase: the salt is chosen when it is first written.
                let salt = random::<16>()?;
                let store = Self {
                    path: path.clone(),
                    key: derive_from_passphrase(passphrase, &salt)?,
                    source: KeySource::Passphrase,
                };
                store.write_file(&store.empty_file(Some(&salt))?)?;
                return Ok(store);
            }
            (None, _, _) => (key_file(&input.key_file)?, KeySource::KeyFile),
        };
        let store = Self { path, key, source };
        if let Some(file) = existing {
            store.check_key(&file)?;
        }
        Ok(store)
    }

    /// Whether this store's key opens `file` (its check value).
    fn check_key(&self, file: &StoreFile) -> Result<(), LocalError> {
        match open(&self.key, CHECK_NAME, &file.check) {
            Some(check) if check.expose() == CHECK_VALUE => Ok(()),
            _ => Err(LocalError::WrongKey {
                path: self.path.clone(),
                key: self.source,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn empty_file(&self, salt: Option<&[u8]>) -> Result<StoreFile, LocalError> {
        Ok(StoreFile {
            format: FORMAT.into(),
            key_source: self.source,
            salt: salt.map(|s| B64.encode(s)),
            check: seal(&self.key, CHECK_NAME, CHECK_VALUE)?,
            secrets: BTreeMap::new(),
        })
    }

    fn read_file(path: &Path) -> Result<Option<StoreFile>, LocalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        let file: StoreFile = serde_json::from_str(&text).map_err(|e| LocalError::Damaged {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if file.format != FORMAT {
            return Err(LocalError::Damaged {
                path: path.to_path_buf(),
                detail: format!("unknown format `{}`", file.format),
            });
        }
        Ok(Some(file))
    }

    /// Replaces the file atomically (see [`crate::files::replace`]).
    fn write_file(&self, file: &StoreFile) -> Result<(), LocalError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let text = serde_json::to_vec_pretty(file).map_err(|e| LocalError::Damaged {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        crate::files::replace(&self.path, &text).map_err(io_err(&self.path))
    }

    /// Runs `change` on the current file under an exclusive lock and writes the result.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut StoreFile) -> Result<T, LocalError>,
    ) -> Result<T, LocalError> {
        let lock_path = self.path.with_extension("lock");
        if let Some(dir) = lock_path.parent() {
            create_private_dir(dir)?;
        }
        let _guard = crate::files::lock_exclusive(&lock_path).map_err(io_err(&lock_path))?;
        let mut file = match Self::read_file(&self.path)? {
            Some(file) => file,
            None => self.empty_file(None)?,
        };
        self.check_key(&file)?;
        let result = change(&mut file)?;
        self.write_file(&file)?;
        Ok(result)
    }

    /// Stores `value` under `name`; returns the new version number.
    pub fn set(&self, name: &str, value: &Secret) -> Result<u64, LocalError> {
        self.update(|file| {
            let version = file.secrets.get(name).map_or(1, |e| e.version + 1);
            file.secrets.insert(
                name.to_owned(),
                Entry {
                    sealed: seal(&self.key, name, value.expose())?,
                    version,
                },
            );
            Ok(version)
        })
    }

    pub fn get(&self, name: &str) -> Result<Secret, LocalError> {
        let file = Self::read_file(&self.path)?
            .ok_or_else(|| LocalError::NoSuchSecret { name: name.into() })?;
        let entry = file
            .secrets
            .get(name)
            .ok_or_else(|| LocalError::NoSuchSecret { name: name.into() })?;
        open(&self.key, name, &entry.sealed).ok_or_else(|| LocalError::WrongKey {
            path: self.path.clone(),
            key: self.source,
        })
    }

    /// Removes `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, LocalError> {
        self.update(|file| Ok(file.secrets.remove(name).is_some()))
    }

    pub fn list(&self) -> Result<Vec<EntryInfo>, LocalError> {
        let Some(file) = Self::read_file(&self.path)? else {
            return Ok(Vec::new());
        };
        Ok(file
            .secrets
            .iter()
            .map(|(name, e)| EntryInfo {
                name: name.clone(),
                version: e.version,
            })
            .collect())
    }
}

/// Creates `dir` (and parents) if missing; a directory frona creates is 0700.
fn create_private_dir(dir: &Path) -> Result<(), LocalError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("frona-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn input(dir: &Path) -> KeyInput {
        KeyInput {
            key_file: dir.join("config/master.key"),
            ..KeyInput::default()
        }
    }

    #[test]
    fn round_trip_with_a_key_file_and_nothing_in_clear_on_disk() {
        let dir = dir("keyfile");
        let store = LocalStore::open(dir.join("data/secrets.json"), &input(&dir)).unwrap();
        assert_eq!(
            store
                .set("stripe", &Secret::from_string("sk_live_supersecret".into()))
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .set("stripe", &Secret::from_string("sk_live_rotated".into()))
                .unwrap(),
            2
        );
        assert_eq!(store.get("stripe").unwrap().expose(), b"sk_live_rotated");
        assert_eq!(
            store.list().unwrap(),
            [EntryInfo {
                name: "stripe".into(),
                version: 2
            }]
        );
        let on_disk = std::fs::read_to_string(dir.join("data/secrets.json")).unwrap();
        assert!(!on_disk.contains("sk_live"), "{on_disk}");
        let mode = std::fs::metadata(dir.join("config/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(dir.join("data/secrets.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // Reopening reads the same key file.
        let again = LocalStore::open(dir.join("data/secrets.json"), &input(&dir)).unwrap();
        assert_eq!(again.get("stripe").unwrap().expose(), b"sk_live_rotated");
        assert!(again.remove("stripe").unwrap());
        assert!(matches!(
            again.get("stripe"),
            Err(LocalError::NoSuchSecret { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn master_key_and_wrong_key() {
        let dir = dir("master");
        let path = dir.join("secrets.json");
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let with = |key: &str| KeyInput {
            master_key: Some(Secret::from_string(key.into())),
            ..input(&dir)
        };
        let store = LocalStore::open(&path, &with(hex)).unwrap();
        store.set("a", &Secret::from_string("v".into())).unwrap();
        let other = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert!(matches!(
            LocalStore::open(&path, &with(other)),
            Err(LocalError::WrongKey { .. })
        ));
        assert!(matches!(
            LocalStore::open(&path, &with("short")),
            Err(LocalError::BadMasterKey)
        ));
        let b64 = B64.encode([0x11u8; 32]);
        assert!(LocalStore::open(dir.join("b64.json"), &with(&b64)).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passphrase_store() {
        let dir = dir("pass");
        let path = dir.join("secrets.json");
        let with = |p: &str| KeyInput {
            passphrase: Some(Secret::from_string(p.into())),
            ..input(&dir)
        };
        let store = LocalStore::open(&path, &with("correct horse")).unwrap();
        store
            .set("gh", &Secret::from_string("ghp_x".into()))
            .unwrap();
        assert_eq!(
            LocalStore::open(&path, &with("correct horse"))
                .unwrap()
                .get("gh")
                .unwrap()
                .expose(),
            b"ghp_x"
        );
        assert!(matches!(
            LocalStore::open(&path, &with("wrong")),
            Err(LocalError::WrongKey { .. })
        ));
        assert!(matches!(
            LocalStore::open(&path, &input(&dir)),
            Err(LocalError::NeedsPassphrase { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ciphertext_moved_to_another_name_does_not_open() {
        let dir = dir("swap");
        let path = dir.join("secrets.json");
        let store = LocalStore::open(&path, &input(&dir)).unwrap();
        store
            .set("a", &Secret::from_string("value-a".into()))
            .unwrap();
        store
            .set("b", &Secret::from_string("value-b".into()))
            .unwrap();
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["secrets"]["b"] = file["secrets"]["a"].clone();
        std::fs::write(&path, file.to_string()).unwrap();
        assert!(store.get("b").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = dir("concurrent");
        let path = dir.join("secrets.json");
        LocalStore::open(&path, &input(&dir))
            .unwrap()
            .set("seed", &Secret::from_string("x".into()))
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (path, dir) = (path.clone(), dir.clone());
                std::thread::spawn(move || {
                    let store = LocalStore::open(&path, &input(&dir)).unwrap();
                    for i in 0..10 {
                        store
                            .set(
                                &format!("s{t}-{i}"),
                                &Secret::from_string(format!("v{t}-{i}")),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = LocalStore::open(&path, &input(&dir)).unwrap();
        assert_eq!(store.list().unwrap().len(), 81);
        assert_eq!(store.get("s7-9").unwrap().expose(), b"v7-9");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
