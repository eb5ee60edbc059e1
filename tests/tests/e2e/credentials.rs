//! `frona secret` and `frona credential` end to end on the embedded store: values go in on
//! stdin, come out nowhere (only fingerprints), and stay encrypted and hidden from the agent.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{frona, frona_run};

const VALUE: &str = "sk_live_Fr0naTestValue0123456789abcdef";
const ROTATED: &str = "sk_live_Fr0naRotatedValue9876543210zyx";

pub struct Dirs {
    pub root: PathBuf,
}

impl Dirs {
    /// Stores `value` in the local store under `name`.
    pub fn store(&self, name: &str, value: &str) {
        let mut child = self
            .cmd(&["secret", "set", name])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "secret set {name}");
    }

    pub fn new(name: &str) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-creds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = frona();
        cmd.args(args)
            .env("FRONA_CONFIG_DIR", self.root.join("config"))
            .env("FRONA_DATA_DIR", self.root.join("data"))
            .current_dir(&self.root);
        cmd
    }

    /// Runs frona with `stdin`; fails the test if a known value shows in its output.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let output = child.wait_with_output().unwrap();
        for secret in [VALUE, ROTATED] {
            for stream in [&output.stdout, &output.stderr] {
                assert!(
                    !String::from_utf8_lossy(stream).contains(secret),
                    "value printed by {args:?}"
                );
            }
        }
        output
    }

    /// No file frona wrote holds a value in clear.
    fn assert_nothing_in_clear(&self) {
        for entry in walk(&self.root) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(VALUE) && !text.contains(ROTATED),
                "{} holds a value in clear",
                entry.display()
            );
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The fingerprint `frona credential test` prints: first 8 hex of SHA-256.
pub fn fingerprint(value: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        });
    String::from_utf8_lossy(&out.unwrap().stdout)[..8].to_owned()
}

#[test]
fn local_store_life_cycle_prints_no_value() {
    let dirs = Dirs::new("cycle");
    dirs.run(&["secret", "set", "stripe"], Some(&format!("{VALUE}\n")));
    assert!(stdout(&dirs.run(&["secret", "list"], None)).contains("stripe\tversion 1"));
    let registered = dirs.run(
        &[
            "credential",
            "register",
            "--name",
            "stripe-key",
            "--backend",
            "local",
            "--path",
            "stripe",
            "--env",
            "STRIPE_API_KEY",
        ],
        None,
    );
    assert!(registered.status.success(), "{registered:?}");
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&dirs.run(&["credential", "list", "--json"], None))).unwrap();
    assert_eq!(listed[0]["name"], "stripe-key");
    assert_eq!(listed[0]["env"], "STRIPE_API_KEY");

    let tested = stdout(&dirs.run(&["credential", "test", "--name", "stripe-key"], None));
    assert!(
        tested.contains(&format!("fingerprint {}", fingerprint(VALUE))),
        "{tested}"
    );

    dirs.run(
        &["credential", "rotate", "--name", "stripe-key"],
        Some(ROTATED),
    );
    let tested: serde_json::Value = serde_json::from_str(&stdout(&dirs.run(
        &["credential", "test", "--name", "stripe-key", "--json"],
        None,
    )))
    .unwrap();
    assert_eq!(tested["fingerprint"], fingerprint(ROTATED));

    let health: serde_json::Value = serde_json::from_str(&stdout(
        &dirs.run(&["credential", "health", "--json"], None),
    ))
    .unwrap();
    assert_eq!(health[0]["backend"], "local");
    assert_eq!(health[0]["healthy"], true);

    dirs.assert_nothing_in_clear();
    assert!(
        dirs.run(&["credential", "remove", "--name", "stripe-key"], None)
            .status
            .success()
    );
    let missing = dirs.run(&["credential", "test", "--name", "stripe-key"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("hint:"));
}

#[test]
fn wrong_master_key_and_field_errors_are_clear() {
    let dirs = Dirs::new("errors");
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let mut set = dirs.cmd(&["secret", "set", "db"]);
    set.env("FRONA_MASTER_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = set.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"user":"app","password":"hunter2-db-pass"}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let wrong = dirs
        .cmd(&["secret", "list"])
        .env("FRONA_MASTER_KEY", key.replace('0', "f"))
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not open"),
        "{wrong:?}"
    );
    let register = |field: &str| {
        dirs.cmd(&[
            "credential",
            "register",
            "--name",
            "db",
            "--backend",
            "local",
            "--path",
            "db",
            "--field",
            field,
        ])
        .output()
        .unwrap()
    };
    assert!(register("password").status.success());
    let tested = dirs
        .cmd(&["credential", "test", "--name", "db"])
        .env("FRONA_MASTER_KEY", key)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tested.stdout).contains(&fingerprint("hunter2-db-pass")),
        "{tested:?}"
    );
    assert!(register("nope").status.success());
    let missing = dirs
        .cmd(&["credential", "test", "--name", "db"])
        .env("FRONA_MASTER_KEY", key)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("has no field `nope`"),
        "{missing:?}"
    );
    for output in [&wrong, &tested, &missing] {
        assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
        assert!(!String::from_utf8_lossy(&output.stdout).contains("hunter2"));
    }
}

/// The agent cannot read frona's store, key file or registry, wherever they are.
#[cfg(target_os = "linux")]
#[test]
fn the_agent_cannot_read_frona_files() {
    let dirs = Dirs::new("agent");
    dirs.run(&["secret", "set", "stripe"], Some(VALUE));
    let files: Vec<String> = walk(&dirs.root)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(files.iter().any(|f| f.ends_with("master.key")), "{files:?}");
    let mut args = vec!["attack", "read-files", "sk_live"];
    args.extend(files.iter().map(String::as_str));
    let key_bytes_marker = frona_run(&["--quiet"], &args)
        .env("FRONA_CONFIG_DIR", dirs.root.join("config"))
        .env("FRONA_DATA_DIR", dirs.root.join("data"))
        .output()
        .unwrap();
    assert_eq!(
        key_bytes_marker.status.code(),
        Some(0),
        "{key_bytes_marker:?}"
    );
    // The key file is binary: check that nothing of it can be read inside (the directory is
    // masked, so the file is not even there).
    let master = files.iter().find(|f| f.ends_with("master.key")).unwrap();
    let cat = frona()
        .args(["run", "--quiet", "--", "sh", "-c"])
        .arg(format!("cat {master} 2>/dev/null | wc -c"))
        .env("FRONA_CONFIG_DIR", dirs.root.join("config"))
        .env("FRONA_DATA_DIR", dirs.root.join("data"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout).trim(), "0", "{cat:?}");
}

/// A base32 TOTP seed (RFC 4648 alphabet) that no output may show.
const TOTP_SEED: &str = "JBSWY3DPEHPK3PXP7FRONATOTPSEEDQ2";

/// The codes `seed` gives from `from` to `to` (seconds since the epoch), a step either side.
fn totp_codes(seed: &str, from: u64, to: u64, period: u64) -> Vec<String> {
    let seed = frona_backends::Secret::from_string(seed.to_owned());
    (from.saturating_sub(period)..=to + period)
        .step_by(period as usize)
        .chain([to + period])
        .map(|t| {
            let code = frona_backends::totp::code(&seed, t).unwrap();
            String::from_utf8(code.expose().to_vec()).unwrap()
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The longest run of ASCII digits in `text`.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn totp_credential_test_generates_a_code_and_prints_neither_code_nor_seed() {
    let dirs = Dirs::new("totp");
    let uri = format!("otpauth://totp/Acme:alice?secret={TOTP_SEED}&issuer=Acme&digits=8");
    dirs.run(&["secret", "set", "otp"], Some(&format!("{TOTP_SEED}\n")));
    dirs.run(&["secret", "set", "otp-uri"], Some(&uri));
    for (name, path) in [("acme-otp", "otp"), ("acme-otp8", "otp-uri")] {
        let registered = dirs.run(
            &[
                "credential",
                "register",
                "--name",
                name,
                "--backend",
                "local",
                "--path",
                path,
                "--kind",
                "totp",
            ],
            None,
        );
        assert!(registered.status.success(), "{registered:?}");
    }

    let started = unix_now();
    let human = dirs.run(&["credential", "test", "--name", "acme-otp"], None);
    let json = dirs.run(
        &["credential", "test", "--name", "acme-otp", "--json"],
        None,
    );
    let eight = dirs.run(&["credential", "test", "--name", "acme-otp8"], None);
    let finished = unix_now();

    assert!(
        stdout(&human).contains("acme-otp: ok (local, ")
            && stdout(&human).contains("totp: a 6-digit code was generated"),
        "{human:?}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["kind"], "totp");
    assert_eq!(doc["digits"], 6);
    assert!(doc.get("fingerprint").is_none(), "{doc}");
    assert!(
        stdout(&eight).contains("an 8-digit code was generated"),
        "{eight:?}"
    );

    let mut codes = totp_codes(TOTP_SEED, started, finished, 30);
    codes.extend(totp_codes(&uri, started, finished, 30));
    for output in [&human, &json, &eight] {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(TOTP_SEED), "seed printed: {text}");
            assert!(
                !text
                    .to_lowercase()
                    .contains(&TOTP_SEED.to_lowercase()[..12]),
                "{text}"
            );
            assert!(!text.contains("otpauth"), "uri printed: {text}");
            for code in &codes {
                assert!(!text.contains(code.as_str()), "code printed: {text}");
            }
            assert!(longest_digit_run(&text) < 6, "a code-like number: {text}");
        }
    }
}

#[test]
fn totp_credential_with_an_invalid_seed_fails_without_showing_it() {
    let dirs = Dirs::new("totp-bad");
    let bad = "0189-Fr0naNotBase32Seed!";
    dirs.run(&["secret", "set", "otp"], Some(bad));
    let registered = dirs.run(
        &[
            "credential",
            "register",
            "--name",
            "bad-otp",
            "--backend",
            "local",
            "--path",
            "otp",
            "--kind",
            "totp",
        ],
        None,
    );
    assert!(registered.status.success(), "{registered:?}");
    for args in [
        &["credential", "test", "--name", "bad-otp"][..],
        &["credential", "test", "--name", "bad-otp", "--json"][..],
    ] {
        let tested = dirs.run(args, None);
        assert_eq!(tested.status.code(), Some(1), "{tested:?}");
        let stderr = String::from_utf8_lossy(&tested.stderr);
        assert!(
            stderr.contains("`bad-otp`: the TOTP seed is not valid base32"),
            "{stderr}"
        );
        assert!(stderr.contains("hint:"), "{stderr}");
        for stream in [&tested.stdout, &tested.stderr] {
            let text = String::from_utf8_lossy(stream);
            for part in [bad, "Fr0naNotBase32Seed", "0189"] {
                assert!(!text.contains(part), "seed printed: {text}");
            }
        }
    }
}
