//! Saying what is wrong with the masters, in words and without flooding the log: the cause of a
//! failed attempt as a person would put it (connection refused, DNS failure, TLS error, timeout,
//! an HTTP status with the first line of its body), and the throttle that logs the first failure
//! at once, then at most one line per [`REPEAT_EVERY`] while failures persist, and one line when a
//! master is reached again.

use std::error::Error as _;
use std::time::Duration;

use tokio::time::Instant;

use super::ClientError;

/// While attempts keep failing, at most one log line per this period.
pub const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// The latest failure to reach a master, for the log, the status page, `/readyz` and
/// `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterProblem {
    /// The URL the failed attempt went to.
    pub url: String,
    /// The cause in words.
    pub message: String,
    /// When it happened, ms since the Unix epoch.
    pub at_ms: u64,
    /// Failed attempts since the last success.
    pub attempts: u32,
}

/// What to log after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// The first failure since the last success: WARN at once.
    First,
    /// Failures persist and the last line is [`REPEAT_EVERY`] old: WARN with the attempt count.
    Still,
    /// A master answered after `after_attempts` failed attempts: INFO.
    Recovered { after_attempts: u32 },
}

/// The throttle. Pure: the caller passes the time, so tests need no clock.
#[derive(Debug, Default)]
pub struct FailureLog {
    problem: Option<MasterProblem>,
    last_logged: Option<Instant>,
}

impl FailureLog {
    /// Records a failed attempt; returns the line to log, if any.
    pub fn failure(
        &mut self,
        now: Instant,
        url: String,
        message: String,
        at_ms: u64,
    ) -> Option<LogLine> {
        let attempts = self.problem.as_ref().map_or(0, |p| p.attempts) + 1;
        self.problem = Some(MasterProblem {
            url,
            message,
            at_ms,
            attempts,
        });
        let line = match self.last_logged {
            None => LogLine::First,
            Some(at) if now >= at + REPEAT_EVERY => LogLine::Still,
            Some(_) => return None,
        };
        self.last_logged = Some(now);
        Some(line)
    }

    /// Records a success; returns the line to log when it ends a run of failures.
    pub fn success(&mut self) -> Option<LogLine> {
        self.last_logged = None;
        self.problem.take().map(|p| LogLine::Recovered {
            after_attempts: p.attempts,
        })
    }

    /// The latest failure since the last success.
    pub fn problem(&self) -> Option<&MasterProblem> {
        self.problem.as_ref()
    }
}

/// The cause of a failed attempt in words, without the URL (the caller names it).
pub fn cause(error: &ClientError) -> String {
    match error {
        ClientError::Connect { source, .. } | ClientError::Request { source, .. } => {
            transport_cause(source)
        }
        ClientError::Timeout { after, .. } => format!("timeout: no answer within {after:?}"),
        ClientError::Status { status, body, .. } => {
            let first = body.lines().next().unwrap_or_default().trim();
            if first.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                format!("HTTP {status}: {first}")
            }
        }
        ClientError::GaveUp { last, .. } => cause(last),
        other => other.to_string(),
    }
}

/// Connection refused, DNS failure, TLS error (with what failed) or timeout, from the chain of
/// sources of a reqwest error (hyper and rustls only say it in their messages).
pub(super) fn transport_cause(error: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut refused = false;
    let mut source: Option<&dyn std::error::Error> = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(e.to_string());
        source = e.source();
    }
    let text = chain.join(": ").to_lowercase();
    let deepest = chain.last().cloned().unwrap_or_else(|| error.to_string());
    if refused || text.contains("connection refused") {
        "connection refused (nothing listens on that port: is the port right, is the master up?)"
            .to_owned()
    } else if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        format!("DNS failure: the host name does not resolve ({deepest})")
    } else if text.contains("tls")
        || text.contains("certificate")
        || text.contains("handshake")
        || text.contains("corrupt message")
        || text.contains("invalidcontenttype")
    {
        format!("TLS error: {}{deepest}", tls_verdict(&text, error))
    } else if error.is_timeout() || text.contains("timed out") {
        format!("timeout: {deepest}")
    } else {
        deepest
    }
}

/// Which check of the master's certificate failed, in words, when rustls says one did.
fn tls_verdict(text: &str, error: &reqwest::Error) -> String {
    if text.contains("unknownissuer") {
        "the master's certificate is not signed by a trusted CA (--ca-bundle, else the system's \
         roots): "
            .to_owned()
    } else if text.contains("certificate expired") || text.contains("expired") {
        "the master's certificate has expired: ".to_owned()
    } else if text.contains("not valid for name") || text.contains("notvalidforname") {
        let host = error
            .url()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        format!("the master's certificate is not valid for {host}: ")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_at_once_then_one_line_per_period_then_recovery() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        let fail = |log: &mut FailureLog, at: Duration| {
            log.failure(
                t0 + at,
                "http://m:5050/".into(),
                "connection refused".into(),
                0,
            )
        };
        assert_eq!(fail(&mut log, Duration::ZERO), Some(LogLine::First));
        assert_eq!(fail(&mut log, Duration::from_secs(1)), None);
        assert_eq!(fail(&mut log, Duration::from_secs(29)), None);
        assert_eq!(
            fail(&mut log, Duration::from_secs(30)),
            Some(LogLine::Still)
        );
        assert_eq!(fail(&mut log, Duration::from_secs(59)), None);
        assert_eq!(log.problem().unwrap().attempts, 5);
        assert_eq!(
            log.success(),
            Some(LogLine::Recovered { after_attempts: 5 })
        );
        assert_eq!(log.problem(), None);
        assert_eq!(
            log.success(),
            None,
            "a success after a success says nothing"
        );
        assert_eq!(
            fail(&mut log, Duration::from_secs(60)),
            Some(LogLine::First)
        );
    }

    #[test]
    fn status_cause_is_the_first_line_of_the_body() {
        let error = ClientError::Status {
            status: 503,
            body: "No leader elected\nsecond line".into(),
            url: Box::new("http://m:5050/api/v1/scheduler".parse().unwrap()),
            challenge: None,
        };
        assert_eq!(cause(&error), "HTTP 503: No leader elected");
    }
}
