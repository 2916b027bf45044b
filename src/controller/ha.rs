//! Standby controllers (`run --ha zk://host:2181/mesos-reconciler`): every instance contends in
//! ZooKeeper (`zk::election`); only the leader subscribes and acts. The others re-read the spec
//! directory (so their page shows what would be applied) but run no pass and send nothing to the
//! master; their status server says who leads.
//!
//! Becoming leader: the previous leader lost its session (crashed, paused, cut off), so its
//! framework may still look connected on the master; the new leader recovers it as `--takeover`
//! does: by the framework id in its own state directory if it has one, otherwise by name on the
//! master (`discover.rs`), and adopts its tasks from the master (`adopt.rs`) before acting.
//!
//! Losing the lease (ZooKeeper has not confirmed the session for half its timeout): the
//! controller stops at once, before anything else is handled: the stream is dropped, no pass
//! runs, and the client's gate refuses every call. If ZooKeeper confirms the same session again
//! (a slow or restarted ZooKeeper), nobody else can have led meanwhile (our node outlived the
//! gap), and the controller subscribes again. If the session ended, another controller may
//! lead: this one exits with an error (status 1) and systemd starts it again as a contender with
//! a new session and a fresh load of its state directory. Exiting was chosen over contending
//! again in-process because a fresh start re-reads everything from the store and the master,
//! which the takeover path already does, rather than keeping state that a newer leader made stale.

use serde::{Deserialize, Serialize};

use super::ControllerError;
use super::state::Controller;
use crate::zk::election::Role;

/// What each contender writes in its node: who it is, for the others' status pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContenderInfo {
    pub host: String,
    pub pid: u32,
    /// The status server's address (`10.0.0.5:9797`).
    pub status: String,
}

/// The node label controllers contend with.
pub const CONTENDER_LABEL: &str = "controller";

/// The standby line for a role in which this controller does not act.
pub fn describe(role: &Role) -> String {
    match role {
        Role::Connecting { error: None } => "standby; joining the election in ZooKeeper".to_owned(),
        Role::Connecting { error: Some(e) } => {
            format!("standby; cannot join the election in ZooKeeper: {e}")
        }
        Role::Standby { leader: None } => "standby; leader is unknown".to_owned(),
        Role::Standby { leader: Some(data) } => match serde_json::from_slice::<ContenderInfo>(data)
        {
            Ok(info) => format!(
                "standby; leader is {} (pid {}, status http://{})",
                info.host, info.pid, info.status
            ),
            Err(_) => format!(
                "standby; leader is {:?}",
                String::from_utf8_lossy(data)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        },
        Role::Leader => "not acting: leading, but ZooKeeper has not confirmed this controller's \
                         session for half its timeout; nothing is sent to Mesos until it does"
            .to_owned(),
        Role::Lost(why) => format!("not acting: no longer contending ({why})"),
    }
}

impl Controller {
    /// Follows the election. Called before every event is handled, so that a controller whose
    /// lease ran out (found on waking from a pause) acts on nothing first.
    pub(super) fn follow_leadership(&mut self) {
        let Some(leadership) = &self.leadership else {
            return;
        };
        let role = leadership.role();
        let leads = leadership.acting_until().is_some();
        if let Role::Lost(why) = &role {
            if self.fatal.is_none() {
                self.suspend();
                let text = format!(
                    "lost the ZooKeeper session ({why}): another controller may lead now; \
                     exiting so that this one starts again as a standby"
                );
                tracing::error!("{text}");
                self.fatal = Some(ControllerError::LostLeadership(text));
            }
            return;
        }
        match (self.acting, leads) {
            (false, true) => {
                tracing::warn!(
                    "LEADING: this controller takes over; the framework is recovered from the master (as with --takeover) and its tasks adopted before anything is launched or killed"
                );
                self.acting = true;
                self.standby = None;
                self.takeover = true;
                if self.began {
                    self.connect();
                } else {
                    self.begin();
                }
                self.publish();
            }
            (true, false) => {
                tracing::error!(
                    "ZooKeeper has not confirmed this controller's leadership for half the session timeout: stopping every call to Mesos until it does"
                );
                self.suspend();
                self.standby = Some(describe(&role));
                self.publish();
            }
            (false, false) => {
                let line = describe(&role);
                if self.standby.as_ref() != Some(&line) {
                    tracing::info!("{line}");
                    self.standby = Some(line);
                    self.published.stale = true;
                    self.publish();
                }
            }
            (true, true) => {}
        }
    }

    /// Stops acting: the stream is dropped and nothing waits to be sent.
    fn suspend(&mut self) {
        self.acting = false;
        if let Some(sub) = self.subscription.take() {
            sub.abort();
        }
        if let Some(finding) = self.finding.take() {
            finding.abort();
        }
        self.adoption.interrupt();
        self.connected = false;
        self.offers.clear();
        self.reconciliation.stop();
        self.resubscribe_at = None;
        self.pending_acks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_names_its_leader() {
        let info = ContenderInfo {
            host: "ctl-a".to_owned(),
            pid: 42,
            status: "10.0.0.5:9797".to_owned(),
        };
        let role = Role::Standby {
            leader: Some(serde_json::to_vec(&info).unwrap()),
        };
        assert_eq!(
            describe(&role),
            "standby; leader is ctl-a (pid 42, status http://10.0.0.5:9797)"
        );
        assert!(describe(&Role::Standby { leader: None }).starts_with("standby; "));
        assert!(
            describe(&Role::Connecting {
                error: Some("refused".to_owned())
            })
            .contains("refused")
        );
    }
}
