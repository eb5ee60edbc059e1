//! End-to-end tests of the real `frona` binary, driving the fake agent `frona-test-agent`.

#[cfg(target_os = "linux")]
mod aws_container;
mod backend_aws;
mod backend_azure;
mod backend_gcp;
mod backend_vault;
mod backends_rest;
mod broker;
mod cli;
mod config;
mod credentials;
#[cfg(target_os = "linux")]
mod egress;
mod fake_http;
mod faults;
mod http_proxy;
mod load;
mod mcp_gateway;
mod moto;
mod placeholders;
mod run_ambient;
mod run_env;
#[cfg(target_os = "linux")]
mod run_isolation;
#[cfg(target_os = "linux")]
mod run_persistence;
mod run_supervise;
mod run_tty;
#[cfg(target_os = "linux")]
mod ssh_agent;
mod support;
#[cfg(target_os = "linux")]
mod systemd;
