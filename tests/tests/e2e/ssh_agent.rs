//! frona's SSH agent against real OpenSSH: Debian's `openssh-server` (installed by
//! `scripts/test.sh`) on loopback ports, the user's keys in a real `ssh-agent`, and the real
//! `ssh`, `ssh-add`, `ssh-keygen` and `git` inside `frona run`. The agent reaches the keys only
//! through frona's filtered agent; the attack on the user's own agent socket fails by default
//! and works with `--isolation off`, which shows the test can fail.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{frona, text};

/// A user's machine: three keys in a real ssh-agent, two sshd servers with different host
/// keys, frona's config and state, a project directory. Everything stops on drop.
struct World {
    root: PathBuf,
    agent: Child,
    servers: Vec<(Child, u16)>,
}

const SSHD: &str = "/usr/sbin/sshd";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{cmd:?}: {}", text(&output));
    output
}

impl World {
    /// `None` (the test says it skips) when sshd is not installed, outside CI.
    fn new(name: &str) -> Option<Self> {
        if !Path::new(SSHD).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "sshd is missing under CI: run scripts/test.sh"
            );
            eprintln!("SKIPPED: no {SSHD}; scripts/test.sh installs openssh-server");
            return None;
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("frona-ssh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["home/.ssh", "keys", "project", "config/policies", "state"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        // The private keys are where users keep them, `~/.ssh` (hidden from the agent: it
        // must not find them and sign without any agent); the public halves in `keys/`.
        for key in ["allowed", "other", "asked", "host1", "host2"] {
            let private = root.join("home/.ssh").join(key);
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .args([
                    "-C".as_ref(),
                    format!("{key}@test").as_ref(),
                    "-f".as_ref(),
                    private.as_os_str(),
                ]));
            std::fs::copy(
                private.with_extension("pub"),
                root.join("keys").join(format!("{key}.pub")),
            )
            .unwrap();
        }
        let agent = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(root.join("agent.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut world = Self {
            root,
            agent,
            servers: Vec::new(),
        };
        let started = Instant::now();
        while !world.agent_socket().exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "no ssh-agent");
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in ["allowed", "other", "asked"] {
            run(Command::new("ssh-add")
                .arg(world.key(key))
                .env("SSH_AUTH_SOCK", world.agent_socket())
                .stderr(Stdio::null()));
        }
        let authorized: String = ["allowed", "other", "asked"]
            .iter()
            .map(|k| world.public(k))
            .collect();
        std::fs::write(world.root.join("authorized_keys"), authorized).unwrap();
        // /run/sshd is sshd's privilege-separation directory (made by its service otherwise).
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut frona_known = String::new();
        let mut agent_known = String::new();
        for (index, host_key) in ["host1", "host2"].iter().enumerate() {
            let port = world.start_sshd(index, host_key);
            let public = world.public(host_key);
            let key = public.rsplit_once(' ').unwrap().0;
            // frona's user knows the first server as localhost, the second as another name.
            let name = if index == 0 {
                "localhost"
            } else {
                "elsewhere.test"
            };
            frona_known.push_str(&format!("[{name}]:{port} {key}\n"));
            agent_known.push_str(&format!(
                "[localhost]:{port} {key}\n[127.0.0.1]:{port} {key}\n"
            ));
        }
        std::fs::write(world.root.join("home/.ssh/known_hosts"), frona_known).unwrap();
        std::fs::write(world.project().join("known_hosts"), agent_known).unwrap();
        Some(world)
    }

    fn start_sshd(&mut self, index: usize, host_key: &str) -> u16 {
        let port = free_port();
        let config = self.root.join(format!("sshd{index}.conf"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n",
                self.key(host_key).display(),
                self.root.join(format!("sshd{index}.pid")).display(),
                self.root.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push((child, port));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        port
    }

    fn port(&self, index: usize) -> u16 {
        self.servers[index].1
    }

    /// A private key (`name`) or a public one (`name.pub`).
    fn key(&self, name: &str) -> PathBuf {
        match name.strip_suffix(".pub") {
            Some(_) => self.root.join("keys").join(name),
            None => self.root.join("home/.ssh").join(name),
        }
    }

    fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join("keys").join(format!("{name}.pub"))).unwrap()
    }

    fn agent_socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }

    fn project(&self) -> PathBuf {
        self.root.join("project")
    }

    fn policy(&self, text: &str) {
        std::fs::write(self.root.join("config/policies/ssh.yaml"), text).unwrap();
    }

    /// What `ssh-add -l` lists on the user's own agent (from outside frona).
    fn real_identities(&self) -> String {
        let output = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", self.agent_socket())
            .output()
            .unwrap();
        text(&output)
    }

    /// `frona` with this world's HOME, config, state and the user's `SSH_AUTH_SOCK`.
    fn frona(&self, args: &[&str]) -> Command {
        let mut cmd = frona();
        cmd.args(args)
            .current_dir(self.project())
            .env("HOME", self.root.join("home"))
            .env("FRONA_CONFIG_DIR", self.root.join("config"))
            .env("FRONA_DATA_DIR", self.root.join("data"))
            .env("FRONA_STATE_DIR", self.root.join("state"))
            .env("SSH_AUTH_SOCK", self.agent_socket());
        cmd
    }

    /// `frona run FLAGS -- sh -c SCRIPT`.
    fn run(&self, flags: &[&str], script: &str) -> Output {
        self.frona(&["run"])
            .args(flags)
            .args(["--", "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// The `ssh` command the agent runs with the key `key` (its public half: the private one
    /// is in the agent): the agent's own known_hosts, no prompt.
    fn ssh(&self, key: &str) -> String {
        format!(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o IdentitiesOnly=yes -i {}",
            self.project().join("known_hosts").display(),
            self.key(&format!("{key}.pub")).display()
        )
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        crate::support::audit_records(&self.root.join("state/audit.jsonl"))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (child, _) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn policy(port: u16) -> String {
    format!(
        r#"
rules:
  - name: allowed-to-localhost
    ssh: {{ key: "allowed@test", host: "localhost:{port}" }}
    effect: permit
  - name: asked-anywhere
    ssh: {{ key: "asked@test" }}
    effect: ask
    timeout: 30s
"#
    )
}

/// The permitted key signs for the permitted host, `ssh` and `git clone` work; the same key is
/// refused for another server (its verified host key is not the permitted host's) and outside
/// any session (`ssh-keygen -Y sign`); an unlisted key is neither listed nor used; keys cannot
/// be removed. Every signature is audited with its key and host, never its data.
#[test]
fn the_filtered_agent_signs_only_what_the_policy_permits() {
    let Some(world) = World::new("filter") else {
        return;
    };
    let (port, other_port) = (world.port(0), world.port(1));
    world.policy(&policy(port));
    // A bare repository on the "server" side (the same machine), cloned over SSH.
    let repo = world.root.join("repo.git");
    run(Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&repo));
    let ssh = world.ssh("allowed");
    let data = world.project().join("data.txt");
    std::fs::write(&data, "sign me").unwrap();
    let script = format!(
        "echo listed:; ssh-add -l; \
         {ssh} -p {port} root@localhost echo permitted-ok; echo ssh=$?; \
         {ssh} -p {other_port} root@127.0.0.1 echo should-not-run; echo other-host=$?; \
         GIT_SSH_COMMAND='{ssh}' git clone -q ssh://root@localhost:{port}{repo} clone; echo clone=$?; \
         ssh-keygen -Y sign -n file -f {allowed} {data}; echo sign-unbound=$?; \
         ssh-keygen -Y sign -n file -f {other} {data}; echo sign-other=$?; \
         ssh-add -D; echo remove=$?",
        repo = repo.display(),
        allowed = world.key("allowed.pub").display(),
        other = world.key("other.pub").display(),
        data = data.display(),
    );
    let output = world.run(&[], &script);
    let out = text(&output);
    assert!(out.contains("frona's SSH agent"), "{out}");
    let listed = out
        .split("listed:")
        .nth(1)
        .unwrap()
        .split("permitted-ok")
        .next()
        .unwrap();
    assert!(
        listed.contains("allowed@test") && listed.contains("asked@test"),
        "{out}"
    );
    assert!(
        !listed.contains("other@test"),
        "the unlisted key is listed: {out}"
    );
    assert!(
        out.contains("permitted-ok") && out.contains("ssh=0"),
        "{out}"
    );
    assert!(!out.contains("should-not-run"), "{out}");
    assert!(!out.contains("other-host=0"), "{out}");
    assert!(out.contains("clone=0"), "{out}");
    assert!(world.project().join("clone").is_dir(), "{out}");
    assert!(
        !out.contains("sign-unbound=0"),
        "a host rule signed with no session: {out}"
    );
    assert!(!out.contains("sign-other=0"), "{out}");
    assert!(!out.contains("remove=0"), "{out}");
    let real = world.real_identities();
    assert_eq!(
        real.lines().count(),
        3,
        "the user's agent lost keys: {real}"
    );

    let records = world.audit();
    let signs: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["kind"] == "ssh-sign").collect();
    let permitted: Vec<_> = signs.iter().filter(|r| r["decision"] == "permit").collect();
    assert!(permitted.len() >= 2, "ssh and git clone: {signs:?}");
    for record in &permitted {
        assert_eq!(record["rule"], "allowed-to-localhost");
        assert_eq!(
            record["hosts"],
            serde_json::json!([format!("localhost:{port}")])
        );
        assert_eq!(record["comment"], "allowed@test");
        assert!(record["host_key"].as_str().unwrap().starts_with("SHA256:"));
    }
    let elsewhere = format!("elsewhere.test:{other_port}");
    assert!(
        signs
            .iter()
            .any(|r| r["decision"] == "deny" && r["hosts"][0] == elsewhere.as_str()),
        "the other server's signature is denied and audited: {signs:?}"
    );
    assert!(
        signs
            .iter()
            .any(|r| r["decision"] == "deny" && r["host_key"].is_null()),
        "the unbound signature is denied: {signs:?}"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "refused"
            && r["tool"] == "ssh-agent"
            && r["reason"].as_str().unwrap().contains("remove keys")),
        "{records:?}"
    );
    let log = std::fs::read_to_string(world.root.join("state/audit.jsonl")).unwrap();
    assert!(!log.contains("sign me"), "signed data reached the log");
    frona_broker::audit::verify(&world.root.join("state/audit.jsonl")).unwrap();
}

/// The user's own agent socket, by its path: reachable with `--isolation off` (every key
/// listed, so the attack is real), hidden by default.
#[test]
fn the_users_own_agent_is_out_of_reach() {
    let Some(world) = World::new("attack") else {
        return;
    };
    world.policy(&policy(world.port(0)));
    let script = format!(
        "SSH_AUTH_SOCK={} ssh-add -l; echo rc=$?",
        world.agent_socket().display()
    );
    let open = text(&world.run(&["--quiet", "--isolation", "off"], &script));
    assert!(
        open.contains("other@test") && open.contains("rc=0"),
        "{open}"
    );
    let closed = text(&world.run(&["--quiet"], &script));
    assert!(!closed.contains("other@test"), "{closed}");
    assert!(!closed.contains("rc=0"), "{closed}");
    // `frona env check` says what becomes of the user's agent.
    let check = world.frona(&["env", "check", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let socket = world.agent_socket();
    let entry = doc["ambient"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == socket.to_str().unwrap())
        .unwrap_or_else(|| panic!("{doc}"))
        .clone();
    assert_eq!(entry["action"], "filtered", "{entry}");
}

/// `ask`: the signature waits for `frona approve`, then goes through; the grant is for that key
/// (and host) only.
#[test]
fn an_asked_signature_waits_for_approval() {
    let Some(world) = World::new("ask") else {
        return;
    };
    let port = world.port(0);
    world.policy(&policy(port));
    let ssh = world.ssh("asked");
    let script = format!("{ssh} -p {port} root@localhost echo approved-ok; echo rc=$?");
    let agent = world
        .frona(&["run", "--quiet", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let id = loop {
        let output = world.frona(&["approvals", "--json"]).output().unwrap();
        let pending: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).unwrap_or_default();
        if let Some(p) = pending.first() {
            assert_eq!(p["tool"], "ssh-sign", "{p}");
            assert!(p["args"][1] == "asked@test", "{p}");
            break p["id"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no approval appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let approve = world
        .frona(&["approve", &id, "--for", "once"])
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", text(&approve));
    let output = agent.wait_with_output().unwrap();
    let out = text(&output);
    assert!(out.contains("approved-ok") && out.contains("rc=0"), "{out}");
    let records = world.audit();
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "ask" && r["tool"] == "ssh-sign")
    );
    assert!(records.iter().any(|r| r["kind"] == "ssh-sign"
        && r["decision"] == "permit"
        && r["rule"] == "asked-anywhere"));
}
