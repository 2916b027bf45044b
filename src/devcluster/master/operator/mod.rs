//! Upstream's v0 operator endpoints, the read-only JSON ones an operator (or a controller that
//! lost its state) asks the master: for now `GET /master/frameworks`. The others of upstream's
//! `Master::Http` (`/master/tasks`, `/master/slaves`, `/master/roles`, ...) belong beside it, one
//! file each, routed here.
//!
//! Upstream serves each endpoint under the master's process id (`/master/<name>`) and, for the
//! leading master, without it (`/<name>`); libprocess ignores a trailing slash. The query
//! parameters are upstream's: unknown ones are ignored, `jsonp=<callback>` wraps the document in
//! a call of that function.

mod frameworks;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc;

use super::state::Msg;

/// The routes of the operator endpoints, each with and without `/master` and a trailing slash.
pub(super) fn router(tx: mpsc::UnboundedSender<Msg>) -> Router {
    let mut router = Router::new();
    for path in [
        "/master/frameworks",
        "/master/frameworks/",
        "/frameworks",
        "/frameworks/",
    ] {
        router = router.route(path, get(frameworks::get));
    }
    router.with_state(tx)
}

/// The query parameters of a request, percent-decoded, in order. A parameter given twice keeps
/// its last value, as upstream's query map does.
fn query_value(raw: Option<&str>, name: &str) -> Option<String> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
        .next_back()
}

/// `%XX` and `+` decoded; a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A JSON document as upstream answers it: `application/json`, or with `jsonp` the call
/// `<callback>(<document>);` as `text/javascript`.
fn json_response(body: Vec<u8>, jsonp: Option<String>) -> Response {
    match jsonp {
        Some(callback) => {
            let mut wrapped = Vec::with_capacity(body.len() + callback.len() + 3);
            wrapped.extend_from_slice(callback.as_bytes());
            wrapped.push(b'(');
            wrapped.extend_from_slice(&body);
            wrapped.extend_from_slice(b");");
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript"),
                )],
                wrapped,
            )
                .into_response()
        }
        None => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_the_last_wins() {
        let q = Some("framework_id=a%2Db-0000&x=1&framework_id=c+d&flag");
        assert_eq!(query_value(q, "framework_id").as_deref(), Some("c d"));
        assert_eq!(query_value(q, "x").as_deref(), Some("1"));
        assert_eq!(query_value(q, "flag").as_deref(), Some(""));
        assert_eq!(query_value(q, "jsonp"), None);
        assert_eq!(query_value(None, "x"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
