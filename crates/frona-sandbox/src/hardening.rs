//! What frona does to its own process before it holds any secret.

/// The process could not be hardened; frona refuses to go on holding secrets.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("cannot mark frona non-dumpable")]
    Dumpable(#[source] nix::Error),
    #[error("cannot disable core dumps")]
    CoreLimit(#[source] nix::Error),
}

/// Makes frona non-dumpable (no ptrace attach by the same user, `/proc/<pid>/{mem,environ}`
/// owned by root, no core file) and sets the soft core size limit to zero, which is the only
/// core-dump guard where non-dumpable does not exist. The hard limit is left alone so that the
/// agent, which inherits the soft limit, may still raise it for its own debugging.
pub fn harden_self() -> Result<(), HardeningError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false).map_err(HardeningError::Dumpable)?;
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).map_err(HardeningError::CoreLimit)?;
    setrlimit(Resource::RLIMIT_CORE, 0, hard).map_err(HardeningError::CoreLimit)?;
    Ok(())
}
