//! Who may use the admin socket: root, posd's own user, members of its group.
//!
//! Group membership is read from the connection itself (SO_PEERGROUPS: the
//! groups the kernel recorded for the peer when it connected), not looked up
//! by uid: under the shipped unit's `PrivateUsers=yes` every uid but root and
//! posd's own appears to posd as 65534 (nobody), whose groups are not the
//! peer's; the peer's groups themselves still arrive, posd's among them.

use nix::libc;
use nix::unistd::{getegid, geteuid, Gid, Group, User};
use pos_proto::NOT_ALLOWED;
use std::io;
use std::os::fd::AsRawFd;
use tokio::net::UnixStream;

/// A connected peer, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    /// The credentials and groups of `stream`'s peer.
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().unwrap_or(0),
            groups: peer_groups(stream)?,
        })
    }

    /// Whether this peer may talk to a posd running as `uid`:`gid`.
    fn may_use(&self, uid: u32, gid: u32) -> bool {
        self.uid == 0 || self.uid == uid || self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether this peer may talk to this posd.
    pub fn allowed(&self) -> bool {
        self.may_use(geteuid().as_raw(), getegid().as_raw())
    }
}

/// What a peer that is not allowed is told: who may, and how to become one.
pub fn refusal() -> String {
    let user = match User::from_uid(geteuid()) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {}", geteuid()),
    };
    let group = group_name(getegid());
    format!(
        "{NOT_ALLOWED}only root, user {user} and members of group {group} may use posd's admin \
         socket; add the user to the group: sudo usermod -aG {group} $USER, then log in again"
    )
}

fn group_name(gid: Gid) -> String {
    match Group::from_gid(gid) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13 and later).
fn peer_groups(stream: &impl AsRawFd) -> io::Result<Vec<u32>> {
    let size = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * size) as libc::socklen_t;
        // SAFETY: `groups` has room for `len` bytes; the kernel writes at
        // most that many and sets `len` to what it wrote, or to what it needs.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size;
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || needed <= groups.len() {
            return Err(e);
        }
        groups.resize(needed, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: 1,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_posd_and_its_group_are_allowed_others_not() {
        let (posd, group) = (500, 600);
        assert!(peer(0, 0, &[]).may_use(posd, group));
        assert!(peer(posd, 1, &[]).may_use(posd, group));
        assert!(peer(1000, group, &[]).may_use(posd, group));
        // A member by supplementary group, as a PrivateUsers posd sees one:
        // uid and primary gid are nobody's, the groups are the peer's.
        assert!(peer(65534, 65534, &[65534, group]).may_use(posd, group));
        assert!(!peer(65534, 65534, &[65534, 27]).may_use(posd, group));
        assert!(!peer(1000, 1000, &[]).may_use(posd, group));
    }

    #[tokio::test]
    async fn peer_groups_are_the_connecting_process_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.uid, geteuid().as_raw());
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut seen = peer.groups.clone();
        ours.sort();
        seen.sort();
        assert_eq!(seen, ours);
        assert!(peer.allowed());
    }

    #[test]
    fn the_refusal_says_how_to_get_in() {
        let why = refusal();
        assert!(why.starts_with(NOT_ALLOWED), "{why}");
        let group = group_name(getegid());
        assert!(why.contains(&format!("usermod -aG {group} $USER")), "{why}");
    }
}
