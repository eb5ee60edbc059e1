//! An environment from arbitrary bytes through the scrubber's analysis, the way `frona run`
//! and `frona env check` see it. The input is read as `NAME=VALUE` lines (a name may hold any
//! byte but `=` and newline); lines `#keep NAME`, `#strip GLOB` and `#allowlist` set the options.
//! The value detectors (on each value and on the whole input, for multi-line values such as PEM
//! keys) and the decision in every mode must never panic; the report must list every variable
//! once, in order; the environment the agent gets must be exactly the variables decided `Keep`,
//! with their values unchanged; and a value a detector flags is never kept unless its name was
//! given to `--keep`.

#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use frona_sandbox::EnvSnapshot;
use frona_sandbox::scrub::{self, Decision, EnvMode, ScrubOptions, detect_credential_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detect_credential_value(data);
    let mut options = ScrubOptions::default();
    let mut vars = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"#keep ") {
            options.keep.push(OsString::from_vec(name.to_vec()));
        } else if let Some(glob) = line.strip_prefix(b"#strip ") {
            options
                .strip
                .push(String::from_utf8_lossy(glob).into_owned());
        } else if line == b"#allowlist" {
            options.mode = EnvMode::Allowlist;
        } else {
            let (name, value) = match line.iter().position(|&b| b == b'=') {
                Some(eq) => (&line[..eq], &line[eq + 1..]),
                None => (line, &b""[..]),
            };
            vars.push((OsString::from_vec(name.to_vec()), value.to_vec()));
        }
    }
    for (_, value) in &vars {
        let _ = detect_credential_value(value);
    }
    if options.validate().is_err() {
        return;
    }
    let env = EnvSnapshot::from_pairs(vars);
    for mode in [EnvMode::Default, EnvMode::Allowlist] {
        let options = ScrubOptions {
            mode,
            ..options.clone()
        };
        let (report, kept) = scrub::scrub(&env, &options);
        assert_eq!(report.entries.len(), env.len());
        let kept_names: Vec<_> = report.kept().map(|(name, _)| name.to_owned()).collect();
        let given: Vec<_> = kept.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(
            kept_names, given,
            "the environment is the variables decided keep"
        );
        let mut kept_values = kept.iter();
        for ((name, value), (entry, decision)) in env.iter().zip(&report.entries) {
            assert_eq!(name, entry.as_os_str(), "report order");
            if matches!(decision, Decision::Keep(_)) {
                let passed = kept_values.next().map(|(_, v)| v.as_bytes());
                assert_eq!(passed, Some(value), "a kept value is passed on unchanged");
                assert!(
                    detect_credential_value(value).is_none()
                        || options.keep.iter().any(|k| k == name),
                    "a value that looks like a credential was kept"
                );
            }
        }
        let _ = report.summary_line();
        let _ = report.to_json_value();
    }
});
