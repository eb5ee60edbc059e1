use std::net::IpAddr;

use super::*;
use crate::PolicySet;

fn pattern(text: &str) -> HostPattern {
    HostPattern::parse(text).unwrap()
}

fn name(text: &str) -> Target {
    Target::parse(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn patterns_that_open_too_much_are_refused_with_a_reason() {
    let err = |text: &str| HostPattern::parse(text).unwrap_err();
    assert_eq!(err(""), PatternError::Empty);
    assert_eq!(err("  "), PatternError::Empty);
    assert_eq!(err("*"), PatternError::Everything("*".into()));
    assert_eq!(err("*:443"), PatternError::Everything("*:443".into()));
    assert_eq!(err("*.com"), PatternError::WholeTld("*.com".into()));
    assert_eq!(err("*.COM"), PatternError::WholeTld("*.COM".into()));
    assert_eq!(err("com"), PatternError::SingleLabel("com".into()));
    assert_eq!(
        err("a..example.com"),
        PatternError::EmptyLabel("a..example.com".into())
    );
    assert_eq!(
        err(".example.com"),
        PatternError::EmptyLabel(".example.com".into())
    );
    assert_eq!(
        err("example.com."),
        PatternError::EmptyLabel("example.com.".into())
    );
    assert_eq!(err("*."), PatternError::EmptyLabel("*.".into()));
    assert_eq!(
        err("api.*.example.com"),
        PatternError::MisplacedWildcard("api.*.example.com".into())
    );
    assert_eq!(
        err("api-*.example.com"),
        PatternError::MisplacedWildcard("api-*.example.com".into())
    );
    assert_eq!(
        err("*.*.com"),
        PatternError::MisplacedWildcard("*.*.com".into())
    );
    assert_eq!(
        err("exa mple.com"),
        PatternError::Invalid("exa mple.com".into())
    );
    assert_eq!(err("bücher.de"), PatternError::Invalid("bücher.de".into()));
    assert_eq!(
        err("-x.example.com"),
        PatternError::Invalid("-x.example.com".into())
    );
    assert_eq!(
        err("example.com:0"),
        PatternError::Port("example.com:0".into())
    );
    assert_eq!(
        err("example.com:65536"),
        PatternError::Port("example.com:65536".into())
    );
    assert_eq!(
        err("example.com:x"),
        PatternError::Port("example.com:x".into())
    );
    assert_eq!(
        err("example.com:0443"),
        PatternError::Port("example.com:0443".into())
    );
    assert_eq!(err("0.0.0.0/0"), PatternError::TooWide("0.0.0.0/0".into()));
    assert_eq!(
        err("10.0.0.0/7"),
        PatternError::TooWide("10.0.0.0/7".into())
    );
    assert_eq!(err("::/0"), PatternError::TooWide("::/0".into()));
    assert_eq!(err("2000::/3"), PatternError::TooWide("2000::/3".into()));
    assert_eq!(
        err("10.0.0.0/33"),
        PatternError::Invalid("10.0.0.0/33".into())
    );
    assert_eq!(err("[::1"), PatternError::Invalid("[::1".into()));
    // The messages say what to do.
    assert!(err("*.com").to_string().contains("*.example.com"));
    assert!(err("*").to_string().contains("every host"));
}

#[test]
fn valid_patterns_and_what_they_match() {
    let github = pattern("GitHub.com");
    assert!(github.matches_target(&name("github.com")));
    assert!(github.matches_target(&name("GITHUB.COM.")));
    assert!(!github.matches_target(&name("api.github.com")));
    assert!(!github.matches_target(&name("github.com.evil.example")));

    let under = pattern("*.github.com");
    assert!(under.matches_target(&name("api.github.com")));
    assert!(under.matches_target(&name("a.b.github.com")));
    assert!(!under.matches_target(&name("github.com")));
    assert!(!under.matches_target(&name("evilgithub.com")));
    assert!(!under.is_address());
    assert!(
        pattern("*.co.uk").matches_target(&name("x.co.uk")),
        "no public-suffix list"
    );

    let local = pattern("localhost:8443");
    assert_eq!(local.port(), Some(8443));
    assert!(local.matches_target(&name("localhost")));

    let net = pattern("10.0.0.0/8");
    assert!(net.is_address());
    assert!(net.matches_target(&Target::Ip(ip("10.255.0.1"))));
    assert!(!net.matches_target(&Target::Ip(ip("11.0.0.1"))));
    assert!(net.matches_ip(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
    assert!(!net.matches_target(&name("ten.example.com")));

    let one = pattern("127.0.0.1:9000");
    assert!(one.matches_ip(ip("127.0.0.1")) && !one.matches_ip(ip("127.0.0.2")));
    assert_eq!(one.port(), Some(9000));

    for v6 in ["::1", "[::1]", "[::1]:8443", "fd00::/8", "[fd00::/8]:443"] {
        let p = pattern(v6);
        assert!(p.is_address(), "{v6}");
    }
    assert!(pattern("[::1]:8443").matches_ip(ip("::1")));
    assert!(pattern("fd00::/8").matches_ip(ip("fd12::1")));
    assert!(!pattern("fd00::/8").matches_ip(ip("fe80::1")));
    assert!(!pattern("::1").matches_ip(ip("127.0.0.1")));
}

#[test]
fn targets_are_normalised_and_invalid_ones_refused() {
    assert_eq!(name("Example.COM."), Target::Name("example.com".into()));
    assert_eq!(name("[::1]"), Target::Ip(ip("::1")));
    assert_eq!(name("::ffff:127.0.0.1"), Target::Ip(ip("127.0.0.1")));
    assert_eq!(Target::parse(""), None);
    assert_eq!(Target::parse("a b"), None);
    assert_eq!(Target::parse("a..b"), None);
    assert_eq!(Target::parse("[::1"), None);
    assert_eq!(name("[::1]").to_string(), "[::1]");
}

#[test]
fn the_address_classifier() {
    use AddressClass::*;
    for (text, class) in [
        ("127.0.0.1", Loopback),
        ("127.1.2.3", Loopback),
        ("::1", Loopback),
        ("::ffff:127.0.0.1", Loopback),
        ("10.0.0.1", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fec0::1", Private),
        ("169.254.1.1", LinkLocal),
        ("fe80::1", LinkLocal),
        ("100.64.0.1", Shared),
        ("100.127.255.255", Shared),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("::", Unspecified),
        ("169.254.169.254", Metadata),
        ("::ffff:169.254.169.254", Metadata),
        ("fd00:ec2::254", Metadata),
        ("224.0.0.1", Multicast),
        ("ff02::1", Multicast),
        ("255.255.255.255", Reserved),
        ("240.0.0.1", Reserved),
        ("192.0.2.1", Reserved),
        ("2001:db8::1", Reserved),
        ("2002:7f00:1::1", Reserved),
        ("64:ff9b::10.0.0.1", Private),
        ("64:ff9b::8.8.8.8", Public),
        ("8.8.8.8", Public),
        ("172.32.0.1", Public),
        ("100.128.0.1", Public),
        ("1.1.1.1", Public),
        ("2606:4700:4700::1111", Public),
        ("2a00:1450:4001::200e", Public),
    ] {
        assert_eq!(classify(ip(text)), class, "{text}");
    }
}

const POLICY: &str = r#"
network:
  - name: github
    allow: [github.com, "*.github.com"]
  - name: no-gists
    deny: gist.github.com
    reason: gists leak code
  - name: internal
    allow: [build.internal.example, "10.20.0.0/16"]
    ports: [8443]
    agent: ci-*
  - name: office-hours
    allow: docs.example.com
    when: { days: [mon-fri], hours: "09:00-18:00" }
  - name: no-ssh
    deny: "*.github.com:22"
"#;

fn set(text: &str) -> PolicySet {
    PolicySet::load([("net.yaml", text)]).unwrap()
}

fn request(host: &str, port: u16, agent: &str) -> EgressRequest {
    EgressRequest {
        target: name(host),
        port,
        agent: agent.into(),
        // Monday 2026-01-05 12:00 UTC.
        time: Timestamp::from_second(1_767_614_400).unwrap(),
    }
}

#[test]
fn deny_wins_ports_agents_and_times() {
    let policy = set(POLICY);
    assert_eq!(policy.network_len(), 5);
    let decide = |host: &str, port: u16, agent: &str| policy.egress(&request(host, port, agent));

    let d = decide("api.github.com", 443, "default");
    assert!(d.allowed);
    assert_eq!(d.rule.as_deref(), Some("github"));
    assert!(decide("github.com", 80, "default").allowed);

    let d = decide("gist.github.com", 443, "default");
    assert!(!d.allowed, "a later deny beats an earlier allow");
    assert_eq!(d.rule.as_deref(), Some("no-gists"));
    assert_eq!(d.reason, "gists leak code");

    let d = decide("api.github.com", 22, "default");
    assert_eq!((d.allowed, d.rule.as_deref()), (false, Some("no-ssh")));
    let d = decide("github.com", 8080, "default");
    assert_eq!((d.allowed, d.rule), (false, None));
    assert!(d.reason.contains("port 8080"), "{}", d.reason);

    assert!(!decide("build.internal.example", 8443, "default").allowed);
    assert!(decide("build.internal.example", 8443, "ci-7").allowed);
    assert!(
        !decide("build.internal.example", 443, "ci-7").allowed,
        "ports: [8443]"
    );

    assert!(decide("docs.example.com", 443, "default").allowed);
    let mut night = request("docs.example.com", 443, "default");
    night.time = Timestamp::from_second(1_767_614_400 + 10 * 3600).unwrap();
    assert!(!policy.egress(&night).allowed);

    let d = decide("example.org", 443, "default");
    assert_eq!((d.allowed, d.rule), (false, None));
    assert_eq!(d.reason, "`example.org` is not allowed");
}

#[test]
fn special_addresses_need_an_address_pattern() {
    let mut policy = set(POLICY);
    let allowed = request("api.github.com", 443, "default");
    assert_eq!(policy.egress_address(&allowed, ip("140.82.112.3")), None);
    for special in [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "100.64.1.1",
        "0.0.0.0",
        "::ffff:192.168.0.1",
    ] {
        let refused = policy.egress_address(&allowed, ip(special)).unwrap();
        assert!(!refused.allowed && refused.rule.is_none(), "{special}");
        assert!(refused.reason.contains("resolves to"), "{}", refused.reason);
    }
    // An exactly allowed name does not vouch for its address; the address itself does.
    policy.allow_hosts("--allow-host", vec![pattern("localhost:8443")]);
    let local = request("localhost", 8443, "default");
    assert!(policy.egress(&local).allowed);
    let refused = policy.egress_address(&local, ip("127.0.0.1")).unwrap();
    assert!(refused.reason.contains("loopback"), "{}", refused.reason);
    assert!(
        refused.reason.contains("--allow-host 127.0.0.1:8443"),
        "{}",
        refused.reason
    );
    policy.allow_hosts("--allow-host", vec![pattern("127.0.0.1:8443")]);
    assert_eq!(policy.egress_address(&local, ip("127.0.0.1")), None);
    assert!(
        policy.egress_address(&local, ip("::1")).is_some(),
        "only the allowed address"
    );
    let other_port = request("localhost", 443, "default");
    assert!(!policy.egress(&other_port).allowed);

    // A network pattern vouches for its addresses, for the agents it applies to.
    let ci = request("build.internal.example", 8443, "ci-1");
    assert_eq!(policy.egress_address(&ci, ip("10.20.3.4")), None);
    assert!(policy.egress_address(&ci, ip("10.21.3.4")).is_some());

    // Address literals: allowed by an address pattern, then checked the same way.
    let literal = EgressRequest {
        target: Target::Ip(ip("10.20.0.5")),
        ..ci.clone()
    };
    assert!(policy.egress(&literal).allowed);
    assert_eq!(policy.egress_address(&literal, ip("10.20.0.5")), None);
    let metadata = EgressRequest {
        target: Target::Ip(ip("169.254.169.254")),
        port: 80,
        ..ci
    };
    assert!(!policy.egress(&metadata).allowed);
    let refused = policy
        .egress_address(&metadata, ip("169.254.169.254"))
        .unwrap();
    assert!(
        refused.reason.contains("cloud metadata"),
        "{}",
        refused.reason
    );
}

#[test]
fn deny_address_patterns_apply_to_resolved_addresses() {
    let policy = set(
        "network:\n  - name: all-example\n    allow: \"*.example.com\"\n  - name: no-lab\n    deny: 203.0.113.0/24\n",
    );
    let request = request("lab.example.com", 443, "default");
    assert!(policy.egress(&request).allowed);
    let refused = policy.egress_address(&request, ip("203.0.113.9")).unwrap();
    assert_eq!(refused.rule.as_deref(), Some("no-lab"));
}

#[test]
fn bad_network_sections_are_load_errors_with_positions() {
    let err = |text: &str| PolicySet::load([("net.yaml", text)]).unwrap_err();
    let e = err("network:\n  - name: all\n    allow: [\"*.com\"]\n");
    assert_eq!((e.line, e.column), (3, 12), "the pattern's position: {e}");
    assert!(e.message.contains("whole top-level domain"), "{e}");
    let e = err("network:\n  - name: all\n    allow: \"*\"\n");
    assert!(e.message.contains("every host"), "{e}");
    let e = err("network:\n  - name: x\n    alow: [a.example.com]\n");
    assert!(e.message.contains("unknown field `alow`"), "{e}");
    let e = err("network:\n  - name: x\n");
    assert!(e.message.contains("give `allow`, `deny` or both"), "{e}");
    let e = err("network:\n  - name: x\n    allow: a.example.com\n    ports: []\n");
    assert!(e.message.contains("ports"), "{e}");
    let e = err("network:\n  - name: x\n    deny: a.example.com\n    ports: [22]\n");
    assert!(e.message.contains("applies to `allow`"), "{e}");
    let e = err(
        "rules:\n  - name: x\n    effect: deny\nnetwork:\n  - name: x\n    deny: a.example.com\n",
    );
    assert!(e.message.contains("already used"), "{e}");
}

/// Found by fuzzing (fuzz/corpus/policy/regression-target-trailing-dot.yaml): `10.0.0.1.` was a
/// host *name* shown as `10.0.0.1`, so it read back as the address it had not been matched as.
#[test]
fn an_address_with_the_root_dot_is_the_address() {
    assert_eq!(name("192.168.1.1."), Target::Ip(ip("192.168.1.1")));
    assert_eq!(name("[::1]."), Target::Ip(ip("::1")));
    for text in [
        "192.168.1.1.",
        "Example.COM.",
        "[::ffff:10.0.0.1]",
        "fe80::1",
    ] {
        let target = name(text);
        assert_eq!(name(&target.to_string()), target, "{text}");
    }
    assert!(!pattern("*.168.1.1").matches_target(&name("192.168.1.1.")));
}

/// Found while fuzzing (fuzz/corpus/policy/regression-embedded-v4-prefix.yaml): an IPv4 network
/// written in IPv6 kept its IPv6 prefix; matching then computed `32 - 104` (a panic in a debug
/// build, and in a release build a mask of zero: every IPv4 address matched).
#[test]
fn an_ipv4_network_written_in_ipv6_is_that_ipv4_network() {
    let net = pattern("::ffff:10.0.0.0/104");
    assert!(net.is_address());
    assert!(net.matches_ip(ip("10.200.0.1")));
    assert!(net.matches_ip(ip("::ffff:10.200.0.1")));
    assert!(!net.matches_ip(ip("11.0.0.1")));
    assert!(!net.matches_ip(ip("169.254.169.254")));
    assert!(pattern("64:ff9b::a01:203/128").matches_ip(ip("10.1.2.3")));
    let err = |text: &str| HostPattern::parse(text).unwrap_err();
    assert_eq!(
        err("::ffff:10.0.0.0/95"),
        PatternError::Invalid("::ffff:10.0.0.0/95".into())
    );
    assert_eq!(
        err("::ffff:0.0.0.0/96"),
        PatternError::TooWide("::ffff:0.0.0.0/96".into())
    );
    let policy = set("network:\n  - name: ten\n    allow: [\"::ffff:10.0.0.0/104\"]\n");
    let request = request("internal.example.com", 443, "default");
    assert_eq!(policy.egress_address(&request, ip("10.1.2.3")), None);
    assert!(
        policy
            .egress_address(&request, ip("169.254.169.254"))
            .is_some_and(|d| !d.allowed)
    );
}

#[test]
fn connect_targets_as_explain_and_test_cases_name_them() {
    let parse = |text: &str| Connect::parse(text).unwrap();
    let c = parse("API.github.com");
    assert_eq!(
        (c.target, c.port, c.path),
        (name("api.github.com"), 443, None)
    );
    let c = parse("github.com:22");
    assert_eq!((c.port, c.path), (22, None));
    let c = parse("https://github.com/acme/app");
    assert_eq!((c.port, c.path), (443, None), "https:// is a CONNECT");
    let c = parse("http://pypi.org/simple/x?token=1");
    assert_eq!((c.port, c.path.as_deref()), (80, Some("/simple/x")));
    assert_eq!(c.to_string(), "http://pypi.org:80/simple/x");
    let c = parse("HTTP://10.0.0.5:8080");
    assert_eq!(
        (c.target, c.port, c.path.as_deref()),
        (Target::Ip(ip("10.0.0.5")), 8080, Some("/"))
    );
    let c = parse("[::1]:8443");
    assert_eq!((c.target.clone(), c.port), (Target::Ip(ip("::1")), 8443));
    assert_eq!(c.to_string(), "CONNECT [::1]:8443");
    assert_eq!(
        parse("fd00:ec2::254").target,
        Target::Ip(ip("fd00:ec2::254"))
    );
    assert_eq!(parse("[::1]").port, 443);

    let err = |text: &str| Connect::parse(text).unwrap_err();
    assert_eq!(
        err("ftp://x.example"),
        ConnectError::Scheme("ftp://x.example".into())
    );
    assert_eq!(
        err("http://u:p@x.example/"),
        ConnectError::UserInfo("http://u:p@x.example/".into())
    );
    for port in [
        "x.example:0",
        "x.example:99999",
        "x.example:+1",
        "x.example:",
    ] {
        assert_eq!(err(port), ConnectError::Port(port.into()), "{port}");
    }
    for host in [
        "",
        "exa mple.com",
        "x.example:443/path",
        "[::1",
        "[::1]x",
        "http://",
    ] {
        assert_eq!(err(host), ConnectError::Host(host.into()), "{host:?}");
    }
}

#[test]
fn an_address_target_is_checked_before_any_resolution() {
    let mut policy = set(POLICY);
    let at = |target: &str, port: u16| EgressRequest {
        target: Target::parse(target).unwrap(),
        ..request("unused.example", port, "ci-1")
    };
    // A name is decided by its host and port only.
    assert!(policy.egress_unresolved(&at("api.github.com", 443)).allowed);
    // An address the agent names is checked as a resolved one would be.
    let d = policy.egress_unresolved(&at("10.20.0.7", 8443));
    assert!(d.allowed, "{d:?}");
    policy.allow_hosts("--allow-host", vec![pattern("169.254.0.0/16")]);
    assert!(policy.egress(&at("169.254.169.254", 80)).allowed);
    assert!(policy.egress_unresolved(&at("169.254.169.254", 80)).allowed);
    let mut policy = set(POLICY);
    policy.allow_hosts("--allow-host", vec![pattern("*.example.org")]);
    let d = policy.egress_unresolved(&at("127.0.0.1", 443));
    assert_eq!((d.allowed, d.rule), (false, None));
}
