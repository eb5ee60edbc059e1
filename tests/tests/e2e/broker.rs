//! The broker end to end: an agent under `frona run` asks for tool calls with `frona tool`;
//! the policy decides; permitted tools get the credential in their environment only, their
//! output comes back redacted, and every decision is in a verifiable audit log.

use std::path::Path;
use std::process::Output;

use crate::credentials::Dirs;
use crate::support::frona_bin;
use crate::support::text;

const VALUE: &str = "sk_live_BrokerE2eValue0123456789abc";

fn setup(name: &str, policy: &str) -> Dirs {
    let dirs = Dirs::new(name);
    dirs.store("stripe", VALUE);
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
    timeout: 1s
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
    assert!(
        out.contains("no answer to approval"),
        "an unanswered ask is denied: {out}"
    );

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
    assert_eq!(records.iter().filter(|r| r["kind"] == "ask").count(), 1);
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

const ASKING: &str = r#"
rules:
  - name: printenv-asks
    tool: printenv
    credentials: [stripe-key]
    effect: ask
    timeout: 3s
"#;

/// Polls `frona approvals --json` until `count` calls have asked in total; returns the newest id.
fn wait_for_approval(dirs: &Dirs, seen: &mut Vec<String>) -> String {
    let started = std::time::Instant::now();
    loop {
        let output = dirs
            .cmd(&["approvals", "--json"])
            .env("FRONA_STATE_DIR", dirs.root.join("state"))
            .output()
            .unwrap();
        let pending: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).unwrap_or_default();
        if let Some(id) = pending
            .iter()
            .filter_map(|p| p["id"].as_str())
            .find(|id| !seen.iter().any(|s| s == id))
        {
            seen.push(id.to_owned());
            return id.to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no approval appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn operator(dirs: &Dirs, args: &[&str]) -> Output {
    dirs.cmd(args)
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .output()
        .unwrap()
}

#[test]
fn ask_then_approve_once_then_deny() {
    let dirs = setup("approve-once", ASKING);
    let frona = frona_bin();
    let script = format!(
        "{f} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc1=$?; \
         {f} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc2=$?",
        f = frona.display()
    );
    let agent = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let first = wait_for_approval(&dirs, &mut seen);
    assert!(
        operator(&dirs, &["approve", &first, "--for", "once"])
            .status
            .success()
    );
    let second = wait_for_approval(&dirs, &mut seen);
    assert!(
        operator(&dirs, &["deny", &second, "--reason", "not twice"])
            .status
            .success()
    );
    let output = agent.wait_with_output().unwrap();
    let out = text(&output);
    assert!(out.contains("[REDACTED]\nrc1=0"), "{out}");
    assert!(
        out.contains("rc2=77") && out.contains("denied by the operator: not twice"),
        "{out}"
    );
    assert!(!out.contains(VALUE));
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert_eq!(log.matches("\"kind\":\"ask\"").count(), 2, "{log}");
    frona_broker::audit::verify(&dirs.root.join("state/audit.jsonl")).unwrap();
}

#[test]
fn approve_for_a_while_revoke_and_time_out() {
    let dirs = setup("approve-2h", ASKING);
    let frona = frona_bin();
    let flag = dirs.root.join("revoked");
    let script = format!(
        "{f} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc1=$?; \
         {f} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc2=$?; \
         echo phase2; while [ ! -e {flag} ]; do sleep 0.05; done; \
         {f} tool --credential stripe-key -- printenv STRIPE_API_KEY; echo rc3=$?",
        f = frona.display(),
        flag = flag.display()
    );
    let mut agent = crate::support::Running::start({
        let mut cmd = dirs.cmd(&["run", "--quiet", "--", "sh", "-c", &script]);
        cmd.env("FRONA_STATE_DIR", dirs.root.join("state"));
        cmd
    });
    let mut seen = Vec::new();
    let first = wait_for_approval(&dirs, &mut seen);
    assert!(
        operator(&dirs, &["approve", &first, "--for", "2h"])
            .status
            .success()
    );
    assert_eq!(agent.line(), "[REDACTED]");
    assert_eq!(agent.line(), "rc1=0");
    assert_eq!(
        agent.line(),
        "[REDACTED]",
        "the 2h grant covers the second call without asking"
    );
    assert_eq!(agent.line(), "rc2=0");
    assert_eq!(agent.line(), "phase2");
    let grants: Vec<serde_json::Value> =
        serde_json::from_slice(&operator(&dirs, &["grant", "list", "--json"]).stdout).unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let id = grants[0]["id"].as_str().unwrap();
    assert!(operator(&dirs, &["grant", "revoke", id]).status.success());
    std::fs::write(&flag, "").unwrap();
    // Revoked: the third call asks again, and nobody answers within the rule's 3 s.
    assert_eq!(agent.line(), "rc3=77");
    let (code, stderr) = agent.finish();
    assert_eq!(code, 0);
    assert!(stderr.contains("no answer to approval"), "{stderr}");
}

/// The agent cannot approve its own request: frona's state directory (with the control
/// sockets) is hidden from it, and the control socket refuses processes frona started.
#[test]
fn the_agent_cannot_approve_its_own_request() {
    let dirs = setup("self-approve", ASKING);
    let frona = frona_bin();
    let script = format!(
        "{f} tool --credential stripe-key -- printenv STRIPE_API_KEY 2>{err} & \
         sleep 1; id=$(grep -o 'a-[0-9a-f]*' {err} | head -1); echo id=$id; \
         {f} approve $id --for permanent; echo self=$?; \
         for s in $(ls {state}/control/*.sock 2>/dev/null); do echo reachable=$s; done; \
         wait $!; echo rc=$?",
        f = frona.display(),
        err = dirs.root.join("tool-err").display(),
        state = dirs.root.join("state").display(),
    );
    let output = run_agent(&dirs, &script);
    let out = text(&output);
    assert!(out.contains("id=a-"), "{out}");
    assert!(out.contains("self=1"), "{out}");
    assert!(
        !out.contains("reachable="),
        "the control socket is visible to the agent: {out}"
    );
    assert!(out.contains("rc=77"), "{out}");
    assert!(!out.contains(VALUE));
    // And a process frona started cannot use the control socket even when it can reach it.
    let sockets: Vec<_> = std::fs::read_dir(dirs.root.join("state/control"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        sockets.iter().all(|&n| n == 0),
        "the control socket is removed when frona exits"
    );
}

/// 64 clients at once: every call answered, every decision audited once, the chain intact.
#[test]
fn sixty_four_concurrent_clients_are_all_audited() {
    let dirs = setup("concurrent", POLICY);
    let frona = frona_bin();
    let script = format!(
        "for i in $(seq 1 64); do {f} tool --credential stripe-key -- sh -c 'echo ok-$STRIPE_API_KEY' > {out}/$i 2>&1 & done; \
         wait; cat {out}/* | sort | uniq -c",
        f = frona.display(),
        out = dirs.root.join("out").display()
    );
    std::fs::create_dir_all(dirs.root.join("out")).unwrap();
    let output = run_agent(&dirs, &script);
    let out = text(&output);
    assert!(out.contains("64 ok-[REDACTED]"), "{out}");
    let log = dirs.root.join("state/audit.jsonl");
    let head = frona_broker::audit::verify(&log).unwrap();
    assert_eq!(head.records, 64, "one decision record per call");
}

/// A dynamic credential: a Vault child token issued for one call (ttl, uses, policies from the
/// rule), given only to the tool, and revoked by accessor after the tool exits.
#[test]
fn dynamic_vault_tokens_are_issued_per_call_and_revoked_after() {
    use crate::backend_vault::{ROOT, State, vault};
    let state = std::sync::Arc::new(std::sync::Mutex::new(State::default()));
    let shared = std::sync::Arc::clone(&state);
    let server = crate::fake_http::FakeServer::start(move |r| vault(r, &shared));
    let dirs = setup(
        "dynamic",
        "rules:\n  - name: child-token\n    tool: sh\n    credentials: [vault-child]\n    effect: permit\n    issue: { ttl: 60s, uses: 1, policies: [stripe-read] }\n",
    );
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "vault-child",
            "--backend",
            "vault",
            "--path",
            "auth/token/create",
            "--kind",
            "dynamic",
            "--env",
            "VAULT_CHILD",
        ])
        .output()
        .unwrap();
    assert!(register.status.success());
    let frona = frona_bin();
    let script = format!(
        "echo root=${{VAULT_TOKEN:-unset}}; {f} tool --credential vault-child -- sh -c 'echo child=$VAULT_CHILD'; echo rc=$?",
        f = frona.display()
    );
    let output = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("VAULT_ADDR", server.url())
        .env("VAULT_TOKEN", ROOT)
        .output()
        .unwrap();
    let out = text(&output);
    assert!(
        out.contains("root=unset"),
        "frona's own Vault token never reaches the agent: {out}"
    );
    assert!(
        out.contains("child=[REDACTED]") && out.contains("rc=0"),
        "{out}"
    );
    assert!(!out.contains("hvs."), "{out}");
    assert_eq!(
        state.lock().unwrap().revoked_accessors,
        ["acc-child-1"],
        "revoked after the call"
    );
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(
        log.contains("\"kind\":\"revoke\"") && log.contains("\"ok\":true"),
        "{log}"
    );
    assert!(!log.contains("hvs."), "no token in the audit log");
}

/// `frona issue` hands a value to the agent only where a rule says `deliver: value`.
#[test]
fn values_reach_the_agent_only_with_deliver_value() {
    let dirs = setup(
        "deliver",
        "rules:\n  - name: sdk\n    tool: python3\n    credentials: [stripe-key]\n    effect: permit\n    issue: { deliver: value }\n  - name: tools-only\n    tool: node\n    credentials: [stripe-key]\n    effect: permit\n",
    );
    let frona = frona_bin();
    let script = format!(
        "{f} issue --credential stripe-key --tool python3; echo rc1=$?; {f} issue --credential stripe-key --tool node; echo rc2=$?",
        f = frona.display()
    );
    let out = text(&run_agent(&dirs, &script));
    assert!(
        out.contains(&format!("STRIPE_API_KEY={VALUE}\nrc1=0")),
        "{out}"
    );
    assert!(
        out.contains("rc2=77") && out.contains("gives credentials to tools only"),
        "{out}"
    );
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(
        log.contains("\"kind\":\"deliver\"") && !log.contains(VALUE),
        "{log}"
    );
}

/// One connection carries calls in sequence, each answer ending with its final event; a
/// malformed line is refused without losing the connection.
#[test]
fn one_connection_carries_several_calls() {
    let dirs = setup(
        "pipeline",
        "rules:\n  - name: sdk\n    tool: python3\n    credentials: [stripe-key]\n    effect: permit\n    issue: { deliver: value }\n",
    );
    let agent = crate::support::agent_bin();
    let out = text(&run_agent(
        &dirs,
        &format!("{} pipeline python3", agent.display()),
    ));
    assert!(out.contains("exit deny exit"), "{out}");
    let out = text(&run_agent(
        &dirs,
        &format!("{} pipeline node", agent.display()),
    ));
    assert!(out.contains("deny deny deny"), "{out}");
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6, "every call audited:\n{log}");
}

/// An agent that opens connections in a loop gets an error past the limit instead of making
/// frona spawn threads without end, and the broker serves again once they are closed.
#[test]
fn a_connection_flood_is_bounded() {
    let dirs = setup("flood", "rules: []\n");
    let agent = crate::support::agent_bin();
    let out = text(&run_agent(&dirs, &format!("{} flood 256", agent.display())));
    assert!(
        out.contains("flooded: {\"type\":\"error\",\"message\":\"too many open connections"),
        "{out}"
    );
    assert!(
        out.contains("after: {\"type\":\"decision\",\"effect\":\"deny\""),
        "{out}"
    );
}

/// A tool the broker runs (outside the sandbox, holding a credential) cannot call the broker
/// in turn: only the agent's own process tree may.
#[test]
fn tools_cannot_call_the_broker_themselves() {
    let dirs = setup("nested", POLICY);
    let frona = frona_bin();
    let script = format!(
        "{f} tool --credential stripe-key -- sh -c \"FRONA_BROKER_SOCKET=$FRONA_BROKER_SOCKET {f} tool --credential stripe-key -- sh -c 'echo nested=\\$STRIPE_API_KEY'; echo inner=\\$?\"; echo outer=$?",
        f = frona.display()
    );
    let out = text(&run_agent(&dirs, &script));
    assert!(
        out.contains("inner=77") && out.contains("not part of the agent's process tree"),
        "{out}"
    );
    assert!(!out.contains("nested=") && !out.contains(VALUE), "{out}");
}

/// Tools run under their own isolation: frona's init helper with the agent's profile (host
/// network), so a tool holding one credential cannot read the others' files either.
#[cfg(target_os = "linux")]
#[test]
fn tools_run_isolated_too() {
    let dirs = setup("tool-isolation", POLICY);
    let home = dirs.root.join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "aws_secret_access_key = TOOL-MUST-NOT-SEE-THIS\n",
    )
    .unwrap();
    let frona = frona_bin();
    let script = format!(
        "{f} tool --credential stripe-key -- sh -c 'cat $HOME/.aws/credentials 2>&1; echo pid=$$; grep -c ^Cap /proc/self/status >/dev/null; grep CapEff /proc/self/status'",
        f = frona.display()
    );
    let output = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("HOME", &home)
        .output()
        .unwrap();
    let out = text(&output);
    assert!(!out.contains("TOOL-MUST-NOT-SEE-THIS"), "{out}");
    assert!(
        out.contains("pid=2\n") || out.contains("pid=1\n"),
        "the tool is in its own pid namespace: {out}"
    );
    assert!(
        out.contains("CapEff:\t0000000000000000"),
        "no capabilities: {out}"
    );
}

/// A value the agent received (`deliver: value`) and then passes as an argument is redacted
/// from the audit log.
#[test]
fn audited_arguments_are_redacted() {
    let dirs = setup(
        "audit-args",
        "rules:\n  - name: sdk\n    tool: python3\n    credentials: [stripe-key]\n    effect: permit\n    issue: { deliver: value }\n",
    );
    let frona = frona_bin();
    let script = format!(
        "v=$({f} issue --credential stripe-key --tool python3 | cut -d= -f2-); {f} tool -- curl -H \"Authorization: Bearer $v\" https://api.stripe.com; echo rc=$?",
        f = frona.display()
    );
    let out = text(&run_agent(&dirs, &script));
    assert!(out.contains("rc=77"), "{out}");
    let log = std::fs::read_to_string(dirs.root.join("state/audit.jsonl")).unwrap();
    assert!(!log.contains(VALUE), "{log}");
    assert!(log.contains("Bearer [REDACTED]"), "{log}");
}

/// An AWS STS session per call, end to end against moto: the tool gets a temporary key (ASIA…)
/// with the rule's session policy and duration; frona's own AWS keys never reach the agent.
#[test]
fn aws_sts_sessions_per_call_against_moto() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let dirs = setup(
        "sts",
        "rules:\n  - name: aws-ro\n    tool: sh\n    credentials: [aws-readonly]\n    effect: permit\n    issue:\n      ttl: 15m\n      session_policy: { Version: \"2012-10-17\", Statement: [{ Effect: Allow, Action: \"s3:List*\", Resource: \"*\" }] }\n",
    );
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "aws-readonly",
            "--backend",
            "aws",
            "--path",
            "arn:aws:iam::123456789012:role/readonly",
            "--kind",
            "dynamic",
        ])
        .output()
        .unwrap();
    assert!(register.status.success());
    let frona = frona_bin();
    let script = format!(
        "echo agent=${{AWS_SECRET_ACCESS_KEY:-unset}}; {f} tool --credential aws-readonly -- sh -c 'echo prefix=$(printf %s \"$AWS_ACCESS_KEY_ID\" | cut -c1-4); echo token=${{#AWS_SESSION_TOKEN}}'; echo rc=$?",
        f = frona.display()
    );
    let output = dirs
        .cmd(&["run", "--quiet", "--", "sh", "-c", &script])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "frona-own-aws-secret")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(out.contains("agent=unset"), "{out}");
    assert!(
        out.contains("prefix=ASIA") && out.contains("rc=0"),
        "a temporary STS key reached the tool: {out}"
    );
    assert!(!out.contains("token=0"), "{out}");
    assert!(!out.contains("frona-own-aws-secret"));
}

/// The broker's socket directory must be private to frona's user: one made beforehand by
/// someone else (here: open to all) is refused rather than used.
#[test]
fn a_socket_directory_prepared_by_someone_else_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dirs = setup("socket-dir", POLICY);
    let runtime = dirs.root.join("runtime");
    std::fs::create_dir_all(runtime.join("frona")).unwrap();
    std::fs::set_permissions(
        runtime.join("frona"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let output = dirs
        .cmd(&["run", "--quiet", "--", "true"])
        .env("FRONA_STATE_DIR", dirs.root.join("state"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125), "{}", text(&output));
    assert!(
        text(&output).contains("is not a private directory of this user"),
        "{}",
        text(&output)
    );
}

/// A TOTP credential: the tool gets the current code, never the seed.
#[test]
fn totp_tools_get_the_code_not_the_seed() {
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let dirs = Dirs::new("totp-broker");
    dirs.store("otp", SEED);
    let register = dirs
        .cmd(&[
            "credential",
            "register",
            "--name",
            "otp",
            "--backend",
            "local",
            "--path",
            "otp",
            "--env",
            "OTP_CODE",
            "--kind",
            "totp",
        ])
        .output()
        .unwrap();
    assert!(register.status.success(), "{}", text(&register));
    std::fs::create_dir_all(dirs.root.join("config/policies")).unwrap();
    std::fs::write(
        dirs.root.join("config/policies/policy.yaml"),
        "rules:\n  - name: otp\n    tool: sh\n    credentials: [otp]\n    effect: permit\n",
    )
    .unwrap();
    let frona = frona_bin();
    // Reversed, the code passes the redaction (which knows the code's own forms only).
    let out = text(&run_agent(
        &dirs,
        &format!(
            "{} tool --credential otp -- sh -c 'echo \"code=$(printf %s \"$OTP_CODE\" | rev)\"; echo \"seen=$OTP_CODE\"'",
            frona.display()
        ),
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seed = frona_backends::Secret::new(SEED.as_bytes().to_vec());
    let expected: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| {
            let code = frona_backends::totp::code(&seed, *t).unwrap();
            String::from_utf8(code.expose().iter().rev().copied().collect()).unwrap()
        })
        .collect();
    assert!(
        expected
            .iter()
            .any(|c| out.contains(&format!("code={c}\n"))),
        "{out} (expected one of {expected:?})"
    );
    assert!(out.contains("seen=[REDACTED]"), "{out}");
    assert!(!out.contains(SEED), "{out}");
}

/// Policies name tools; a path the agent gives must be the tool of that name in the tools'
/// PATH. The agent's own `./sh` (which would print the value reversed, past the redactor) is
/// refused under the rule for `sh`; `/bin/sh` itself is fine.
#[test]
fn a_tool_path_must_be_the_tool_the_policy_names() {
    let dirs = setup("tool-path", POLICY);
    let frona = frona_bin();
    let script = format!(
        "printf '#!/bin/sh\\necho \"$STRIPE_API_KEY\" | rev\\n' > sh; chmod +x sh; \
         {f} tool --credential stripe-key -- ./sh; echo rc1=$?; \
         {f} tool --credential stripe-key -- /bin/sh -c 'echo real'; echo rc2=$?",
        f = frona.display()
    );
    let out = text(&run_agent(&dirs, &script));
    let reversed: String = VALUE.chars().rev().collect();
    assert!(!out.contains(&reversed), "the value leaked reversed: {out}");
    assert!(out.contains("is not the `sh` in the tools' PATH"), "{out}");
    assert!(out.contains("rc1=77"), "{out}");
    assert!(out.contains("real\nrc2=0"), "{out}");
}

/// A log written by frona 0.1.0 (before the audit records were typed) is intact for
/// `frona audit verify`, and this build goes on writing the same chain.
#[test]
fn a_log_of_frona_0_1_0_verifies_and_takes_new_records() {
    let dirs = setup("audit-compat", POLICY);
    let state = dirs.root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/audit-0.1.0.jsonl");
    std::fs::copy(fixture, state.join("audit.jsonl")).unwrap();
    let verify = |expected: u64| {
        let output = dirs
            .cmd(&["audit", "verify", "--json"])
            .env("FRONA_STATE_DIR", &state)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(doc["intact"], true, "{doc}");
        assert_eq!(doc["records"], expected, "{doc}");
    };
    verify(44);
    let frona = frona_bin();
    let output = run_agent(
        &dirs,
        &format!(
            "{} tool --credential stripe-key -- sh -c 'exit 0'",
            frona.display()
        ),
    );
    assert!(output.status.success(), "{}", text(&output));
    verify(45);
}
