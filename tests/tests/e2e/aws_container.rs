//! AWS credentials for the agent through the container credentials endpoint (`kind: aws-sts`),
//! end to end: `frona run --net proxy` with the real boto3 inside the sandbox and the real
//! moto emulator as STS. The SDK finds the endpoint in its environment, gets moto's session
//! credentials (never the long-term key frona's backend holds), and calls STS through the
//! egress proxy (`--proxy-resolve moto.test=127.0.0.1`) as the assumed role. A denying policy
//! leaves the SDK without credentials, a wrong token is refused, and every fetch is audited.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::moto::Moto;
use crate::support::{frona, text};

const ROLE: &str = "arn:aws:iam::123456789012:role/agent";
/// The long-term key frona's AWS backend signs AssumeRole with: it must never reach the agent.
const LONG_TERM_KEY_ID: &str = "AKIAFRONALONGTERM001";
const LONG_TERM_SECRET: &str = "LongTermSecretKey/frona0123456789abcdefXYZ";

/// What the agent runs: the container endpoint without and with a wrong token, then boto3's
/// own credential chain and an STS call through the egress proxy.
const AGENT_SCRIPT: &str = r#"
import json, os, sys, urllib.error, urllib.request
import boto3, botocore.exceptions

port = sys.argv[1]

def fetch(token):
    request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    if token is not None:
        request.add_header("Authorization", token)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("x-frona-error")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-frona-error")

print("NOTOKEN", *fetch(None))
print("WRONGTOKEN", *fetch("0" * 64))
session = boto3.Session(region_name="us-east-1")
try:
    found = session.get_credentials()
    creds = found.get_frozen_credentials() if found else None
except botocore.exceptions.CredentialRetrievalError as e:
    print("CREDERROR", e)
    creds = None
if creds is None:
    print("NOCREDS")
    sys.exit(0)
print("CREDS", json.dumps({"key": creds.access_key, "secret": creds.secret_key, "token": creds.token}))
sts = session.client("sts", endpoint_url=f"http://moto.test:{port}")
print("ARN", sts.get_caller_identity()["Arn"])
again = boto3.Session(region_name="us-east-1").get_credentials().get_frozen_credentials()
print("SAME", again.access_key == creds.access_key)
"#;

/// The venv's Python (boto3 comes with moto), beside the moto server; `None` when missing.
fn python() -> Option<PathBuf> {
    let server = std::env::var("FRONA_TEST_MOTO_SERVER").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server").to_owned()
    });
    let python = Path::new(&server).parent()?.join("python");
    let works = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "boto3 is missing under CI: run scripts/test.sh"
        );
        eprintln!("SKIPPED: no boto3 beside {server}; scripts/test.sh installs it");
        return None;
    }
    Some(python)
}

/// A scratch tree: frona's config (credentials, policies), data, state, runtime directories.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str, policy: &str) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-awscc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["config/policies", "data", "state", "runtime"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::set_permissions(root.join("runtime"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(root.join("config/policies/aws.yaml"), policy).unwrap();
        std::fs::write(root.join("agent.py"), AGENT_SCRIPT).unwrap();
        let scratch = Self { root };
        let registered = scratch
            .frona(&[
                "credential",
                "register",
                "--name",
                "aws",
                "--kind",
                "aws-sts",
                "--backend",
                "aws",
                "--path",
                ROLE,
            ])
            .output()
            .unwrap();
        assert!(registered.status.success(), "{}", text(&registered));
        scratch
    }

    /// frona with this tree and the AWS backend pointed at `moto` with the long-term key.
    fn frona(&self, args: &[&str]) -> Command {
        let mut cmd = frona();
        cmd.args(args)
            .env("HOME", &self.root)
            .env("FRONA_CONFIG_DIR", self.root.join("config"))
            .env("FRONA_DATA_DIR", self.root.join("data"))
            .env("FRONA_STATE_DIR", self.root.join("state"))
            .env("XDG_RUNTIME_DIR", self.root.join("runtime"))
            .current_dir(&self.root);
        cmd
    }

    /// `frona run --net proxy FLAGS… -- sh -c 'env; python agent.py PORT'` with the long-term
    /// key and a profile in frona's own environment.
    fn run(&self, moto: &Moto, python: &Path, flags: &[&str]) -> Output {
        let script = format!(
            "env; echo ENV-END; {} agent.py {}",
            python.display(),
            moto.port
        );
        self.frona(&["run", "--net", "proxy"])
            .args(flags)
            .args(["--", "sh", "-c", &script])
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", LONG_TERM_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", LONG_TERM_SECRET)
            .env("AWS_PROFILE", "prod")
            .output()
            .unwrap()
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(self.root.join("state/audit.jsonl")).unwrap_or_default()
    }

    fn audit(&self, kind: &str) -> Vec<serde_json::Value> {
        self.audit_text()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == kind)
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The value after `PREFIX ` on the agent's output line that starts with it.
fn line<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
}

/// `frona run --net proxy` works on this machine (namespaces); the test skips otherwise.
fn namespaces(scratch: &Scratch) -> bool {
    let probe = scratch
        .frona(&["run", "--quiet", "--net", "proxy", "--", "true"])
        .output()
        .unwrap();
    if !probe.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "--net proxy fails under CI: {}",
            text(&probe)
        );
        eprintln!("SKIPPED: --net proxy is unavailable here: {}", text(&probe));
    }
    probe.status.success()
}

#[test]
fn boto3_gets_sts_sessions_from_the_container_endpoint() {
    let Some(moto) = Moto::start() else { return };
    let Some(python) = python() else { return };
    let scratch = Scratch::new(
        "permit",
        "rules:\n  - name: aws-sdk\n    tool: aws-credentials\n    credentials: [aws]\n    effect: permit\n    issue: { ttl: 1h }\n",
    );
    if !namespaces(&scratch) {
        return;
    }
    let port = moto.port.to_string();
    let output = scratch.run(
        &moto,
        &python,
        &[
            "--proxy-resolve",
            "moto.test=127.0.0.1",
            "--allow-host",
            &format!("moto.test:{port}"),
            "--allow-host",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    let env = out.split("ENV-END").next().unwrap_or_default();
    assert!(
        env.contains(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:3128/frona/aws-credentials"
        ),
        "{env}"
    );
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("AWS_CONTAINER_AUTHORIZATION_TOKEN="))
        .unwrap_or_else(|| panic!("no token: {env}"));
    assert_eq!(token.len(), 64, "{token}");
    for var in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_SESSION_TOKEN=",
        "AWS_PROFILE=",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(var)),
            "{var} reached the agent: {env}"
        );
    }
    // The token is required, and must be this session's.
    assert_eq!(line(&out, "NOTOKEN"), Some("401 no token"), "{out}");
    assert_eq!(line(&out, "WRONGTOKEN"), Some("403 wrong token"), "{out}");
    // boto3's own chain found the endpoint: moto's session, not the long-term key.
    let creds: serde_json::Value =
        serde_json::from_str(line(&out, "CREDS").unwrap_or_else(|| panic!("{out}"))).unwrap();
    let key = creds["key"].as_str().unwrap();
    let secret = creds["secret"].as_str().unwrap();
    assert!(key.starts_with("ASIA"), "a session key id: {key}");
    assert_ne!(key, LONG_TERM_KEY_ID);
    assert_ne!(secret, LONG_TERM_SECRET);
    assert!(!creds["token"].as_str().unwrap().is_empty());
    // And STS, reached through the egress proxy, knows them as the assumed role.
    assert_eq!(
        line(&out, "ARN"),
        Some("arn:aws:sts::123456789012:assumed-role/agent/frona-default"),
        "{out}"
    );
    assert_eq!(
        line(&out, "SAME"),
        Some("True"),
        "a second SDK got the same session"
    );
    // Every fetch audited: two refused for the token, then a new session and a reused one.
    let fetches = scratch.audit("aws-credentials");
    let decisions: Vec<(&str, &str)> = fetches
        .iter()
        .map(|r| {
            (
                r["decision"].as_str().unwrap(),
                r["sts_session"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("deny", "-"),
            ("deny", "-"),
            ("permit", "new"),
            ("permit", "reused")
        ],
        "{fetches:#?}"
    );
    for record in &fetches {
        assert_eq!(record["credentials"], serde_json::json!(["aws"]));
    }
    assert_eq!(fetches[2]["rule"], "aws-sdk");
    assert_eq!(fetches[2]["role"], ROLE);
    // The STS call went through the egress proxy to moto.test, resolved by --proxy-resolve.
    let egress = scratch.audit("egress");
    assert!(
        egress.iter().any(|r| r["host"] == "moto.test"
            && r["decision"] == "permit"
            && r["addresses"] == serde_json::json!(["127.0.0.1"])),
        "{egress:#?}"
    );
    // The long-term key is nowhere the agent or the log could show it; the session's secret
    // is not in the log either.
    let audit = scratch.audit_text();
    for (what, haystack) in [("the agent's output", &out), ("the audit log", &audit)] {
        assert!(
            !haystack.contains(LONG_TERM_SECRET),
            "long-term secret in {what}"
        );
        assert!(
            !haystack.contains(LONG_TERM_KEY_ID),
            "long-term key id in {what}"
        );
    }
    assert!(!audit.contains(secret), "session secret in the audit log");
    assert!(!audit.contains(token), "endpoint token in the audit log");
}

#[test]
fn a_denying_policy_leaves_the_sdk_without_credentials() {
    let Some(moto) = Moto::start() else { return };
    let Some(python) = python() else { return };
    let scratch = Scratch::new(
        "deny",
        "rules:\n  - name: no-aws\n    tool: aws-credentials\n    credentials: [aws]\n    effect: deny\n    reason: no cloud for this agent\n",
    );
    if !namespaces(&scratch) {
        return;
    }
    // moto.test is allowed by name, but its address (loopback) is not: the proxy refuses it.
    let output = scratch.run(
        &moto,
        &python,
        &[
            "--proxy-resolve",
            "moto.test=127.0.0.1",
            "--allow-host",
            &format!("moto.test:{}", moto.port),
        ],
    );
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("NOCREDS"), "{out}");
    assert!(
        out.contains("denied by rule `no-aws`: no cloud for this agent"),
        "{out}"
    );
    assert!(line(&out, "CREDS").is_none(), "{out}");
    let fetches = scratch.audit("aws-credentials");
    let denied: Vec<&serde_json::Value> =
        fetches.iter().filter(|r| r["rule"] == "no-aws").collect();
    assert!(!denied.is_empty(), "{fetches:#?}");
    assert!(
        denied.iter().all(|r| r["decision"] == "deny"),
        "{fetches:#?}"
    );
    assert!(!fetches.iter().any(|r| r["decision"] == "permit"));
    let audit = scratch.audit_text();
    for haystack in [&out, &audit] {
        assert!(!haystack.contains(LONG_TERM_SECRET));
        assert!(!haystack.contains(LONG_TERM_KEY_ID));
    }
    // `--proxy-resolve` changes only the lookup: the address is still checked.
    let probe = format!(
        "{} -c 'import urllib.request, urllib.error\ntry:\n    urllib.request.urlopen(\"http://moto.test:{}/\", timeout=10)\nexcept urllib.error.HTTPError as e:\n    print(\"STATUS\", e.code)'",
        python.display(),
        moto.port
    );
    let refused = scratch
        .frona(&[
            "run",
            "--quiet",
            "--net",
            "proxy",
            "--proxy-resolve",
            "moto.test=127.0.0.1",
            "--allow-host",
            &format!("moto.test:{}", moto.port),
            "--",
            "sh",
            "-c",
            &probe,
        ])
        .output()
        .unwrap();
    assert_eq!(
        line(&text(&refused), "STATUS"),
        Some("403"),
        "{}",
        text(&refused)
    );
}

#[test]
fn aws_credential_needs_the_egress_proxy() {
    let scratch = Scratch::new("net-host", "rules: []\n");
    let output = scratch
        .frona(&["run", "--aws-credential", "aws", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(
        text(&output).contains("use --net proxy"),
        "{}",
        text(&output)
    );
    // Found, not asked for: said plainly, and the agent runs without.
    let output = scratch
        .frona(&["run", "--isolation", "off", "--", "sh", "-c", "env"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output)
            .contains("aws-sts credential `aws` is served to AWS SDKs only under --net proxy"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("AWS_CONTAINER_CREDENTIALS_FULL_URI="));
    let quiet = scratch
        .frona(&["run", "--quiet", "--isolation", "off", "--", "true"])
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
    // Not a credential of that kind.
    let other = scratch
        .frona(&[
            "run",
            "--net",
            "proxy",
            "--aws-credential",
            "nope",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(125), "{}", text(&other));
}
