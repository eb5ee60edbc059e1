//! End-to-end tests of the real `frona` binary, driving the fake agent `frona-test-agent`.

mod run_env;
mod run_supervise;
mod run_tty;
mod support;
