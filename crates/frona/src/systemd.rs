//! Running under systemd: [`notify`] tells the service manager how `frona run` is doing
//! (`Type=notify`, the watchdog), and [`credentials`] finds frona's own bootstrap secrets among
//! the credentials the unit loads (`LoadCredential=`). The unit files are in `systemd/` at the
//! repository's root; `docs/systemd.md` explains them.

pub mod credentials;
pub mod notify;
