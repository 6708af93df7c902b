//! Who may use the admin socket: root, posd's own user, members of its group.

use nix::unistd::{getegid, geteuid, getgrouplist, Gid, Uid, User};
use std::ffi::CString;

/// Whether the peer `uid` (with primary group `gid`) may talk to this posd.
pub fn allowed(uid: u32, gid: u32) -> bool {
    let ours = getegid();
    if uid == 0 || Uid::from_raw(uid) == geteuid() || Gid::from_raw(gid) == ours {
        return true;
    }
    // Supplementary groups are not in the peer credentials: look them up.
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = CString::new(user.name) else {
        return false;
    };
    getgrouplist(&name, user.gid)
        .map(|groups| groups.contains(&ours))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_allowed() {
        assert!(allowed(0, 0));
        assert!(allowed(geteuid().as_raw(), getegid().as_raw()));
    }

    #[test]
    fn strangers_are_not() {
        // uid/gid 4242424 exist nowhere: not root, not us, no groups.
        if geteuid().as_raw() != 4_242_424 && getegid().as_raw() != 4_242_424 {
            assert!(!allowed(4_242_424, 4_242_424));
        }
    }
}
