//! Who is on the other end of a broker connection: `SO_PEERCRED` gives the peer's pid and uid
//! (translated into frona's pid namespace by the kernel); the peer must be a descendant of the
//! agent's init helper, so that no other process of the same user can use the agent's grants.

use std::os::fd::AsFd;

/// The peer's pid and uid; in audit records `peer_pid` and `peer_uid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    #[serde(rename = "peer_pid")]
    pub pid: i32,
    #[serde(rename = "peer_uid")]
    pub uid: u32,
}

pub fn peer_of(socket: &impl AsFd) -> std::io::Result<Peer> {
    let creds = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(Peer {
        pid: creds.pid(),
        uid: creds.uid(),
    })
}

/// The parent pid of `pid`, from `/proc`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` descends from `ancestor` (walking parents up to init).
pub fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut current = pid;
    for _ in 0..4096 {
        if current == ancestor {
            return true;
        }
        match parent_of(current) {
            Some(parent) if parent > 0 && parent != current => current = parent,
            _ => return false,
        }
    }
    false
}
