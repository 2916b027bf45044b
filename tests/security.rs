//! Issue 11, the hardening: the doors of the controller (the status server's token, the users
//! tasks may run as, the limits on a hostile desired tree), the secrets that must never show, a
//! real TLS handshake with the dev master, and the fuzz targets run from their committed corpus.
//!
//! Each submodule proves one group; the process-level ones run the real binary.

#[path = "support/proc.rs"]
mod proc;

#[path = "security/doors.rs"]
mod doors;
#[path = "security/limits.rs"]
mod limits;
#[path = "security/secrets.rs"]
mod secrets;
#[path = "security/tls.rs"]
mod tls;
