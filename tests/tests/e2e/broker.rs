//! The broker end to end: an agent under `frona run` asks for tool calls with `frona tool`;
//! the policy decides; permitted tools get the credential in their environment only, their
//! output comes back redacted, and every decision is in a verifiable audit log.

use std::path::Path;
use std::process::Output;

use crate::credentials::Dirs;
use crate::support::frona_bin;

const VALUE: &str = "sk_live_BrokerE2eValue0123456789abc";

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn setup(name: &str, policy: &str) -> Dirs {
    let dirs = Dirs::new(name);
    let mut set = dirs.cmd(&["secret", "set", "stripe"]);
    set.stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = set.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), VALUE.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let register = dirs
        .cmd(&[
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
        ])
        .output()
        .unwrap();
    assert!(register.status.success());
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(dirs.root.join("config/policies/policy.yaml"), policy).unwrap();
    dirs
}

/// `frona run -- sh -c SCRIPT` with frona's state in `dirs` (FRONA_STATE_DIR too).
fn run_agent(dirs: &Dirs, script: &str) -> Output {
    dirs.cmd(&["run", "--quiet", "--", "sh", "-c", script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap()
}

const POLICY: &str = r#"
rules:
  - name: sh-with-stripe
    tool: sh
    credentials: [stripe-key]
    effect: permit
  - name: no-curl
    tool: curl
    credentials: ["*"]
    effect: deny
    reason: curl is not for agents
  - name: printenv-asks
    tool: printenv
    credentials: [stripe-key]
    effect: ask
"#;

#[test]
fn permitted_tools_get_the_credential_and_the_agent_never_does() {
    let dirs = setup("broker", POLICY);
    let frona = frona_bin();
    let frona = frona.display();
    let script = format!(
        "echo agent=${{STRIPE_API_KEY:-unset}}; \
         {frona} tool --credential stripe-key -- sh -c 'echo tool=$STRIPE_API_KEY; echo b64=$(printf %s \"$STRIPE_API_KEY\" | base64); echo len=${{#STRIPE_API_KEY}}; exit 7'; echo rc=$?; \
         {frona} tool --credential stripe-key -- curl https://api.stripe.com; echo rc=$?; \
         {frona} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc=$?; \
         {frona} tool -- sh -c 'echo no credential asked'; echo rc=$?"
    );
    let output = run_agent(&dirs, &script);
    let out = text(&output);
    assert!(!out.contains(VALUE), "the value leaked: {out}");
    assert!(out.contains("agent=unset"), "{out}");
    assert!(out.contains("tool=[REDACTED]"), "{out}");
    assert!(
        out.contains("b64=[REDACTED]"),
        "base64 of the value is redacted too: {out}"
    );
    assert!(
        out.contains(&format!("len={}", VALUE.len())),
        "the tool had the real value: {out}"
    );
    let rcs: Vec<&str> = out.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(rcs, ["rc=7", "rc=77", "rc=77", "rc=77"], "{out}");
    assert!(
        out.contains("denied by rule `no-curl`: curl is not for agents"),
        "{out}"
    );
    assert!(out.contains("asks a human"), "{out}");

    // The audit log: every decision, chained, verifiable, no value.
    let log = dirs.root.join("state/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(VALUE));
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decisions: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["permit", "deny", "deny", "deny"]);
    assert!(records.iter().all(|r| r["peer_pid"].is_number()));
    frona_broker::audit::verify(&log).unwrap();
}

#[test]
fn only_the_agents_process_tree_may_call_and_bad_requests_are_refused() {
    let dirs = setup("broker-peer", POLICY);
    // The agent prints its socket path and waits; an outsider (this test) then calls.
    let mut agent = dirs
        .cmd(&[
            "run",
            "--quiet",
            "--",
            "sh",
            "-c",
            "echo $FRONA_BROKER_SOCKET; sleep 5",
        ])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(agent.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let socket = line.trim().to_owned();
    assert!(Path::new(&socket).exists(), "{socket}");
    let call = |body: String| -> String {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        std::io::Write::write_all(&mut stream, body.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer
    };
    let answer = call(r#"{"v":1,"op":"tool","tool":"sh","args":["-c","env"],"credentials":["stripe-key"],"cwd":"/"}"#.to_owned() + "\n");
    assert!(
        answer.contains("not part of the agent's process tree"),
        "{answer}"
    );
    assert!(!answer.contains(VALUE));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = agent.wait();
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(
        log.contains("not part of the agent's process tree"),
        "the refusal is audited"
    );
}
