//! Finding the framework again when the state directory holds no framework id (it was lost,
//! deleted, or this is a standby taking over). Registering anew would start a second framework
//! and launch every task again while the first one's tasks keep running for its failover timeout,
//! so before registering the controller asks the master for the frameworks it knows
//! (`/master/frameworks`) and looks for its own: same name, and same principal when one is
//! configured.
//!
//! - none: register as a new framework;
//! - exactly one, with no scheduler connected: subscribe with its id (a failover), and adopt its
//!   tasks (`adopt.rs`);
//! - exactly one, connected right now: another controller runs it. Refuse (exit 64) naming the
//!   framework and the host it is connected from, unless `--takeover` says to fail it over;
//! - several: refuse to guess; the operator names one with `--framework-id`.
//!
//! `--framework-id` adopts a framework explicitly (checked against the same list: a removed
//! framework cannot be adopted, a connected one only with `--takeover`). If the master cannot be
//! asked, nothing is registered: the controller tries again, as it does when it cannot subscribe.

use super::ControllerError;
use super::session::SessionEvent;
use super::state::Controller;
use crate::model::MasterFramework;

/// What the frameworks the master lists mean for this controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// None is ours: register a new framework.
    New,
    /// Subscribe with this framework id, failing over whoever had it; `why` for the log.
    Adopt { id: String, why: String },
    /// Do not start: the operator must decide (exit 64). The message says what to do.
    Refuse(String),
}

/// Who this controller is, to recognise its framework.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identity<'a> {
    pub name: &'a str,
    /// Compared when configured; without one, any principal matches.
    pub principal: Option<&'a str>,
    /// `--framework-id`.
    pub explicit: Option<&'a str>,
    /// `--takeover`.
    pub takeover: bool,
}

/// Decides what to do about the frameworks the master lists (pure; see the module documentation).
pub(super) fn decide(frameworks: &[MasterFramework], me: Identity<'_>) -> Found {
    if let Some(id) = me.explicit {
        return decide_explicit(frameworks, id, me);
    }
    let ours: Vec<&MasterFramework> = frameworks
        .iter()
        .filter(|f| !f.completed && f.name == me.name)
        .filter(|f| {
            me.principal
                .is_none_or(|p| f.principal.as_deref() == Some(p))
        })
        .collect();
    match ours.as_slice() {
        [] => Found::New,
        [one] if one.connected && !me.takeover => Found::Refuse(connected_message(one)),
        [one] => Found::Adopt {
            id: one.id.clone(),
            why: if one.connected {
                format!(
                    "--takeover: failing over framework {} ({}), connected from {}",
                    one.id,
                    one.name,
                    host_of(one)
                )
            } else {
                format!(
                    "the master has one framework named {:?}{} and no scheduler is connected to it: {}",
                    one.name,
                    principal_note(me.principal),
                    describe(one)
                )
            },
        },
        several => Found::Refuse(format!(
            "the master has {} frameworks named {:?}{}: {}; not guessing which one is this \
             controller's. Pass --framework-id ID (or {}) to adopt one of them and its tasks, \
             and tear the others down",
            several.len(),
            me.name,
            principal_note(me.principal),
            several
                .iter()
                .map(|f| describe(f))
                .collect::<Vec<_>>()
                .join("; "),
            crate::cli::env::FRAMEWORK_ID,
        )),
    }
}

fn decide_explicit(frameworks: &[MasterFramework], id: &str, me: Identity<'_>) -> Found {
    let Some(f) = frameworks.iter().find(|f| f.id == id) else {
        return Found::Adopt {
            id: id.to_owned(),
            why: format!(
                "--framework-id {id}: the master does not list it; subscribing with it anyway \
                 (a master that failed over learns its frameworks back as they re-subscribe)"
            ),
        };
    };
    if f.completed {
        return Found::Refuse(format!(
            "--framework-id {id}: the master removed that framework (torn down, or its failover \
             timeout expired), so its id cannot be used again and its tasks are gone; start \
             without --framework-id to register a new framework"
        ));
    }
    if let (Some(mine), Some(theirs)) = (me.principal, f.principal.as_deref()) {
        if mine != theirs {
            return Found::Refuse(format!(
                "--framework-id {id}: that framework's principal is {theirs:?}, this controller's \
                 is {mine:?}; Mesos does not let a framework change its principal"
            ));
        }
    }
    if f.connected && !me.takeover {
        return Found::Refuse(connected_message(f));
    }
    Found::Adopt {
        id: id.to_owned(),
        why: format!("--framework-id {id}: {}", describe(f)),
    }
}

fn connected_message(f: &MasterFramework) -> String {
    format!(
        "framework {} ({:?}) is connected to the master right now, from host {}: another \
         controller is running it. Stop that one first, or pass --takeover to fail it over (it \
         will stop)",
        f.id,
        f.name,
        host_of(f)
    )
}

/// One framework in a sentence: id, connection, tasks.
fn describe(f: &MasterFramework) -> String {
    let connection = if f.connected {
        format!("connected from {}", host_of(f))
    } else if f.recovered {
        "known from its agents after a master failover".to_owned()
    } else {
        match f.unregistered_time {
            Some(t) => format!(
                "disconnected since {}",
                crate::timefmt::utc((t * 1000.0) as u64)
            ),
            None => "disconnected".to_owned(),
        }
    };
    format!(
        "{} ({connection}, last host {}, {} tasks)",
        f.id,
        host_of(f),
        f.tasks.len()
    )
}

fn host_of(f: &MasterFramework) -> &str {
    f.hostname.as_deref().unwrap_or("unknown")
}

fn principal_note(principal: Option<&str>) -> String {
    principal
        .map(|p| format!(" with principal {p:?}"))
        .unwrap_or_default()
}

impl Controller {
    /// Subscribes if the framework is known (stored, or found on the master), else asks the
    /// master for its frameworks first. A registration that failed before SUBSCRIBED came back
    /// is not simply sent again: the master may have registered the framework all the same, and
    /// the next look finds it.
    pub(super) fn connect(&mut self) {
        if self.framework_id.is_some() || self.adopting.is_some() {
            self.subscribe();
        } else {
            self.find_framework();
        }
    }

    /// What the controller waits for beyond the subscription, for the status page and `/readyz`.
    pub(super) fn recovery_status(&self) -> Option<String> {
        if let Some(e) = &self.find_error {
            return Some(format!(
                "cannot list the frameworks on the master to find this controller's ({e}); \
                 registering none until it answers"
            ));
        }
        if self.finding.is_some() {
            return Some("asking the master whether this controller's framework exists".to_owned());
        }
        self.adoption.describe()
    }

    /// Lists the master's frameworks in the background; the answer comes back as
    /// [`SessionEvent::Frameworks`].
    fn find_framework(&mut self) {
        if self.finding.is_some() {
            return;
        }
        let client = self.client.clone();
        let tx = self.session_tx.clone();
        let only = self.explicit_framework_id.clone();
        if self.find_error.is_none() {
            tracing::info!(
                name = %self.settings.name,
                "no framework id stored: asking the master whether this controller's framework exists"
            );
        }
        self.resubscribe_at = None;
        self.finding = Some(tokio::spawn(async move {
            let listing = crate::mesos::operator::frameworks(&client, only.as_deref());
            let result = super::session::reporting_problems(&client, &tx, listing)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(SessionEvent::Frameworks(result)).await;
        }));
    }

    /// The master's answer: register, adopt, or refuse (see [`decide`]).
    pub(super) fn on_frameworks(&mut self, result: Result<Vec<MasterFramework>, String>) {
        self.finding = None;
        let frameworks = match result {
            Ok(f) => f,
            Err(e) => {
                if self.client.problem().is_some() {
                    // The client has logged it (once, then every 30 s while it lasts).
                    tracing::debug!(error = %e, "cannot list the frameworks on the master");
                } else {
                    tracing::error!(
                        error = %e,
                        "cannot list the frameworks on the master; not registering a new framework until it answers, as that could run every task twice"
                    );
                }
                self.find_error = Some(e);
                self.schedule_resubscribe();
                return;
            }
        };
        self.find_error = None;
        let me = Identity {
            name: &self.settings.name,
            principal: self.settings.principal.as_deref(),
            explicit: self.explicit_framework_id.as_deref(),
            takeover: self.takeover,
        };
        match decide(&frameworks, me) {
            Found::New => {
                tracing::info!(
                    "the master has no framework of this controller: registering a new one"
                );
                self.subscribe();
            }
            Found::Adopt { id, why } => {
                tracing::warn!(
                    framework_id = %id,
                    "RECOVERING THE FRAMEWORK FROM THE MASTER (no framework id in the state directory): {why}; its tasks will be adopted"
                );
                self.adopting = Some(id);
                self.adoption.require();
                self.subscribe();
            }
            Found::Refuse(message) => {
                tracing::error!("{message}");
                self.fatal = Some(ControllerError::Refused(message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(id: &str, name: &str, connected: bool) -> MasterFramework {
        MasterFramework {
            id: id.to_owned(),
            name: name.to_owned(),
            hostname: Some(format!("host-of-{id}")),
            connected,
            ..Default::default()
        }
    }

    fn me(name: &str) -> Identity<'_> {
        Identity {
            name,
            principal: None,
            explicit: None,
            takeover: false,
        }
    }

    #[test]
    fn no_framework_of_this_name_registers_a_new_one() {
        let list = [fw("a", "other", false), {
            let mut gone = fw("b", "ctl", false);
            gone.completed = true;
            gone
        }];
        assert_eq!(decide(&list, me("ctl")), Found::New);
        assert_eq!(decide(&[], me("ctl")), Found::New);
    }

    #[test]
    fn one_disconnected_framework_is_adopted() {
        let list = [fw("a", "other", true), fw("b", "ctl", false)];
        match decide(&list, me("ctl")) {
            Found::Adopt { id, why } => {
                assert_eq!(id, "b");
                assert!(why.contains("no scheduler is connected"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_connected_framework_is_refused_unless_taking_over() {
        let list = [fw("b", "ctl", true)];
        match decide(&list, me("ctl")) {
            Found::Refuse(m) => {
                assert!(m.contains("framework b"), "{m}");
                assert!(m.contains("host-of-b"), "{m}");
                assert!(m.contains("--takeover"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let takeover = Identity {
            takeover: true,
            ..me("ctl")
        };
        assert!(matches!(decide(&list, takeover), Found::Adopt { id, .. } if id == "b"));
    }

    #[test]
    fn several_frameworks_are_refused_with_a_list() {
        let list = [fw("a", "ctl", false), fw("b", "ctl", true)];
        for takeover in [false, true] {
            let who = Identity {
                takeover,
                ..me("ctl")
            };
            match decide(&list, who) {
                Found::Refuse(m) => {
                    assert!(m.contains("2 frameworks"), "{m}");
                    assert!(
                        m.contains("a (disconnected") && m.contains("b (connected from host-of-b"),
                        "{m}"
                    );
                    assert!(m.contains("--framework-id"), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_principal_narrows_the_match_when_configured() {
        let mut ours = fw("a", "ctl", false);
        ours.principal = Some("ops".to_owned());
        let mut theirs = fw("b", "ctl", false);
        theirs.principal = Some("dev".to_owned());
        let list = [ours, theirs];
        let with = Identity {
            principal: Some("ops"),
            ..me("ctl")
        };
        assert!(matches!(decide(&list, with), Found::Adopt { id, .. } if id == "a"));
        assert!(matches!(decide(&list, me("ctl")), Found::Refuse(_)));
    }

    #[test]
    fn an_explicit_id_is_checked_against_the_list() {
        let mut removed = fw("gone", "ctl", false);
        removed.completed = true;
        let list = [fw("a", "ctl", false), fw("b", "ctl", true), removed];
        let explicit = |id| Identity {
            explicit: Some(id),
            ..me("ctl")
        };
        assert!(matches!(decide(&list, explicit("a")), Found::Adopt { id, .. } if id == "a"));
        assert!(
            matches!(decide(&list, explicit("b")), Found::Refuse(m) if m.contains("--takeover"))
        );
        assert!(
            matches!(decide(&list, explicit("gone")), Found::Refuse(m) if m.contains("removed"))
        );
        assert!(
            matches!(decide(&list, explicit("unlisted")), Found::Adopt { id, why } if id == "unlisted" && why.contains("does not list"))
        );
        let mut other_principal = fw("p", "ctl", false);
        other_principal.principal = Some("dev".to_owned());
        let with = Identity {
            explicit: Some("p"),
            principal: Some("ops"),
            ..me("ctl")
        };
        assert!(
            matches!(decide(&[other_principal], with), Found::Refuse(m) if m.contains("principal"))
        );
    }
}
