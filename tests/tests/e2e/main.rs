//! End-to-end tests of the real `frona` binary, driving the fake agent `frona-test-agent`.

mod backend_aws;
mod backend_azure;
mod backend_gcp;
mod backend_vault;
mod backends_rest;
mod broker;
mod credentials;
mod fake_http;
mod http_proxy;
mod moto;
mod run_env;
#[cfg(target_os = "linux")]
mod run_isolation;
mod run_supervise;
mod run_tty;
mod support;
