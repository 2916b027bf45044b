//! What an operator allows the spec files to ask for, beyond what is valid in itself: the users
//! tasks may run as, and the bounds on a desired tree that a hostile or broken repository could
//! otherwise use to exhaust the controller (files, bytes, depth).
//!
//! Whoever can write the desired directory can run commands on the cluster; these rules bound
//! *as whom* and *how much*, nothing more.

use std::collections::BTreeSet;

/// The longest spec id: task ids (`<id>.<instance>.g<generation>.<uuid>`) name sandbox
/// directories on the agents, and one path component may be 255 bytes; 128 leaves room for the
/// rest.
pub const MAX_SPEC_ID_LEN: usize = 128;

/// The operator's rules for spec files. The default allows every user and has the default limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecPolicy {
    /// `None`: any user. Otherwise a spec whose `user` is not listed is invalid.
    pub allowed_users: Option<BTreeSet<String>>,
    pub limits: Limits,
}

impl SpecPolicy {
    /// Whether tasks may run as `user`.
    pub fn allows_user(&self, user: &str) -> bool {
        self.allowed_users
            .as_ref()
            .is_none_or(|allowed| allowed.contains(user))
    }

    /// The allowed users, for messages (`nobody, www-data`).
    pub fn allowed_list(&self) -> String {
        self.allowed_users
            .as_ref()
            .map(|users| users.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }
}

/// Bounds on one desired tree. Past any of them the directory is refused as a whole (a
/// [`super::DirError`]): the specs in force stay, nothing is launched or killed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `.toml` files (valid or not).
    pub max_files: usize,
    /// Bytes of all `.toml` files together.
    pub max_total_bytes: u64,
    /// Directories below the root (`team-a/web.toml` is at depth 1).
    pub max_depth: usize,
}

impl Limits {
    /// 200,000 files (twice the 100,000 specs the controller is sized for), 512 MiB, 16 levels.
    pub const DEFAULT: Limits = Limits {
        max_files: 200_000,
        max_total_bytes: 512 * 1024 * 1024,
        max_depth: 16,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
