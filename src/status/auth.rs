//! Who may change things through the status server: the bearer token of `--token-file`, and the
//! rule that a status server reachable from other machines must have one.
//!
//! Reading endpoints (the page, `/api/v1/status`, metrics, probes) stay open: they are what
//! monitoring scrapes. Every endpoint that changes the controller's state or makes it work
//! (`approve-deletions`, `reread`, `plan`) needs `Authorization: Bearer <token>` when a token is
//! configured. The comparison runs in constant time (`subtle`), so the time an answer takes says
//! nothing about how much of a guess was right.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// The shortest token accepted: 16 bytes of a random generator's output, hex-encoded, is 32.
pub const MIN_TOKEN_LEN: usize = 16;

/// What the status server enforces: the token of its mutating endpoints, and the operator's spec
/// policy, with which `POST /api/v1/plan` reads the posted files as the controller would.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub token: Option<Token>,
    pub policy: Arc<crate::spec::SpecPolicy>,
}

/// A bearer token. Never shown: its `Debug` is redacted and no message contains it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A token file that cannot be used. No message ever contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the token file {} holds {len} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
        path.display()
    )]
    TooShort { path: PathBuf, len: usize },
    #[error(
        "the token in {} contains whitespace or a control character, which an HTTP header cannot carry",
        path.display()
    )]
    BadCharacter { path: PathBuf },
}

impl Token {
    /// Reads a token from a file; one trailing line ending is removed, as editors add one.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        let token = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(TokenError::BadCharacter {
                path: path.to_owned(),
            });
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                path: path.to_owned(),
                len: token.len(),
            });
        }
        Ok(Token(token.into()))
    }

    /// The `Authorization` header value that carries this token.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` (an `Authorization` header's value) carries this token. Constant time
    /// in the token's content; only its length can be told apart.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let Some(given) = presented.strip_prefix(b"Bearer ") else {
            return false;
        };
        bool::from(given.ct_eq(self.0.as_bytes()))
    }

    /// The token itself, for the places that must compare or redact it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Refuses a status server that other machines could reach without a token: any address but
/// loopback needs `--token-file`.
pub fn check_listen(addr: SocketAddr, token: Option<&Token>) -> Result<(), String> {
    if addr.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the status server on {addr} without --token-file: it could release \
         the deletion guard for anyone who reaches it; keep --listen on 127.0.0.1 (the default), \
         or give --token-file FILE (the CLI commands read the same file)"
    ))
}

/// Middleware of the mutating routes: 401 unless the request carries the token (when one is set).
pub async fn require_token(
    State(token): State<Option<Token>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    match presented {
        Some(value) if token.accepts(value) => next.run(request).await,
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the bearer token is wrong; nothing was done (pass --token-file with the controller's token file)\n",
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint needs `Authorization: Bearer <token>`; nothing was done (pass --token-file with the controller's token file)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token(text.into())
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let t = token("0123456789abcdef0123");
        assert!(t.accepts(b"Bearer 0123456789abcdef0123"));
        assert!(!t.accepts(b"Bearer 0123456789abcdef012"));
        assert!(!t.accepts(b"Bearer 0123456789abcdef01234"));
        assert!(!t.accepts(b"bearer 0123456789abcdef0123"));
        assert!(!t.accepts(b"0123456789abcdef0123"));
        assert!(!t.accepts(b""));
    }

    #[test]
    fn the_token_never_prints() {
        let t = token("0123456789abcdef0123");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn only_loopback_listens_without_a_token() {
        let t = token("0123456789abcdef0123");
        assert!(check_listen("127.0.0.1:9797".parse().unwrap(), None).is_ok());
        assert!(check_listen("[::1]:9797".parse().unwrap(), None).is_ok());
        let err = check_listen("0.0.0.0:9797".parse().unwrap(), None).unwrap_err();
        assert!(err.contains("--token-file"), "{err}");
        assert!(check_listen("10.1.2.3:9797".parse().unwrap(), None).is_err());
        assert!(check_listen("0.0.0.0:9797".parse().unwrap(), Some(&t)).is_ok());
    }

    #[test]
    fn token_files_are_checked_without_echoing_them() {
        let dir = std::env::temp_dir().join(format!("token-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        assert_eq!(
            Token::from_file(&path).unwrap().expose(),
            "0123456789abcdef0123"
        );
        std::fs::write(&path, "short-secret\n").unwrap();
        let err = Token::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("at least 16") && !err.contains("short-secret"),
            "{err}"
        );
        std::fs::write(&path, "0123456789 abcdef0123").unwrap();
        let err = Token::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("whitespace") && !err.contains("abcdef"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
