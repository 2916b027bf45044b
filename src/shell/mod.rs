//! The commands an operator runs against a running controller: `status`, `plan` and `logs` (and
//! `approve-deletions`, in `commands`). Each finds the controller's status server ([`server_url`]),
//! asks it over HTTP, prints for a person (or JSON with `--json`) and returns the exit code.
//!
//! Exit codes, as the README documents them: 0 success (`status`: converged), 1 the controller
//! (or an agent) cannot be reached or answered badly, 2 invalid spec files (`plan`), 3 not
//! converged (`status`) or held by the deletion guard (`plan`), 64 bad usage.

pub mod logs;
pub mod plan;
pub mod status;

use std::path::PathBuf;

use crate::cli::{DEFAULT_SERVER, ServerArgs, exit};
use crate::status::StatusClientError;

pub use logs::logs;
pub use plan::plan;
pub use status::status;

/// Why the status server's URL could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot read {}: {source}; is a controller running with --state {}? (or give --server URL)",
        path.display(),
        state.display()
    )]
    AddrFile {
        path: PathBuf,
        state: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: `{text}` is not a host:port address", path.display())]
    BadAddr { path: PathBuf, text: String },
    #[error("--server {0}: expected an http:// or https:// URL such as http://127.0.0.1:9797")]
    BadUrl(String),
}

impl ServerError {
    /// A state directory without a running controller cannot be reached (1); a malformed URL is
    /// bad usage (64).
    pub fn exit_code(&self) -> i32 {
        match self {
            ServerError::AddrFile { .. } => exit::FAILURE,
            ServerError::BadAddr { .. } | ServerError::BadUrl(_) => exit::USAGE,
        }
    }
}

/// The status server to talk to: `--server` when given, else the address in
/// `<state>/status-addr` when `--state` is given, else [`DEFAULT_SERVER`] (the default `--listen`
/// of `run` and `dev`). An address the controller listens on for every interface (`0.0.0.0`,
/// `[::]`) is reached on loopback.
pub fn server_url(args: &ServerArgs) -> Result<String, ServerError> {
    if let Some(server) = &args.server {
        let server = server.trim().trim_end_matches('/');
        return match reqwest::Url::parse(server) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(server.to_owned())
            }
            _ => Err(ServerError::BadUrl(server.to_owned())),
        };
    }
    let Some(state) = &args.state else {
        return Ok(DEFAULT_SERVER.to_owned());
    };
    let path = state.join(crate::controller::STATUS_ADDR_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ServerError::AddrFile {
        path: path.clone(),
        state: state.clone(),
        source,
    })?;
    let text = text.trim();
    let mut addr: std::net::SocketAddr = text.parse().map_err(|_| ServerError::BadAddr {
        path: path.clone(),
        text: text.to_owned(),
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

/// Prints a client error and returns its exit code: a controller that cannot be reached or
/// answers wrongly is 1; a request it refuses as bad (400) is bad usage, 64.
pub(crate) fn report(error: &StatusClientError) -> i32 {
    eprintln!("error: {error}");
    match error {
        StatusClientError::Refused { status: 400, .. } => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// The server URL, or the exit code after printing why there is none.
pub(crate) fn resolve(args: &ServerArgs) -> Result<String, i32> {
    server_url(args).map_err(|e| {
        eprintln!("error: {e}");
        e.exit_code()
    })
}

/// The status server's bearer token from `--token-file`, or the exit code after printing why it
/// cannot be read.
pub fn read_token(args: &ServerArgs) -> Result<Option<crate::status::auth::Token>, i32> {
    let Some(path) = &args.token_file else {
        return Ok(None);
    };
    crate::status::auth::Token::from_file(path)
        .map(Some)
        .map_err(|e| {
            eprintln!("error: --token-file: {e}");
            exit::USAGE
        })
}

/// Milliseconds since the Unix epoch, for "in 12s" and "3m ago".
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: Option<&str>, state: Option<PathBuf>) -> ServerArgs {
        ServerArgs {
            server: server.map(str::to_owned),
            state,
            token_file: None,
        }
    }

    #[test]
    fn server_comes_from_the_flag_the_state_directory_or_the_default() {
        assert_eq!(server_url(&args(None, None)).unwrap(), DEFAULT_SERVER);
        assert_eq!(
            server_url(&args(Some("http://10.0.0.5:9797/"), None)).unwrap(),
            "http://10.0.0.5:9797"
        );
        let dir = std::env::temp_dir().join(format!("mr-server-url-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status-addr"), "0.0.0.0:4242").unwrap();
        assert_eq!(
            server_url(&args(None, Some(dir.clone()))).unwrap(),
            "http://127.0.0.1:4242"
        );
        std::fs::write(dir.join("status-addr"), "[::1]:4243\n").unwrap();
        assert_eq!(
            server_url(&args(None, Some(dir.clone()))).unwrap(),
            "http://[::1]:4243"
        );
        // The flag wins over the state directory.
        assert_eq!(
            server_url(&args(Some("http://127.0.0.1:1"), Some(dir.clone()))).unwrap(),
            "http://127.0.0.1:1"
        );
        std::fs::write(dir.join("status-addr"), "not an address").unwrap();
        let err = server_url(&args(None, Some(dir.clone()))).unwrap_err();
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(err.to_string().contains("not an address"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();

        let err = server_url(&args(None, Some(dir.clone()))).unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert!(err.to_string().contains("status-addr"), "{err}");
        let err = server_url(&args(Some("127.0.0.1:9797"), None)).unwrap_err();
        assert_eq!(err.exit_code(), exit::USAGE);
    }
}
