//! The HTTP rules the v1 APIs share (upstream's `Master::Http::api`, `Master::Http::scheduler`,
//! `Http::api` of the agent): which encoding an answer or a stream takes, and the checks before a
//! call is read, in upstream's order: 405 for another method than POST, 400 without
//! `Content-Type`, 415 for a type other than `application/json` and `application/x-protobuf`
//! (compared byte for byte, as upstream does), 400 for a body that does not parse. The master's
//! operator API (`master/operator/v1.rs`) and the agents' (`http.rs`) read calls through here; the
//! scheduler endpoint shares [`negotiate`].

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::{Message, Name};

use crate::mesos::encoding::Encoding;
use crate::mesos::json;

/// Which encoding the event stream uses (§1): JSON whenever acceptable, else protobuf, else
/// none (406). No `Accept` header accepts everything.
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Some(Encoding::Json);
    }
    let ranges: Vec<(String, f64)> = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            Some((media, q))
        })
        .collect();
    let accepts = |media: &str| {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        // The most specific matching range decides.
        let exact = ranges.iter().find(|(m, _)| m == media);
        let wildcard_subtype = ranges.iter().find(|(m, _)| *m == format!("{kind}/*"));
        let any = ranges.iter().find(|(m, _)| m == "*/*");
        exact
            .or(wildcard_subtype)
            .or(any)
            .is_some_and(|(_, q)| *q > 0.0)
    };
    if accepts("application/json") {
        Some(Encoding::Json)
    } else if accepts("application/x-protobuf") {
        Some(Encoding::Protobuf)
    } else {
        None
    }
}

/// A plain-text answer, as upstream's errors are.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// The call of a v1 API request, or the answer that refuses it.
pub(crate) fn read_call<C: Message + Name + Default>(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<C, Box<Response>> {
    if method != Method::POST {
        let mut answer = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ 'POST' }}, but received '{method}'"),
        );
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(Box::new(answer));
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        )));
    };
    match content_type.as_bytes() {
        b"application/x-protobuf" => Encoding::Protobuf.decode::<C>(body).map_err(|_| {
            Box::new(text(
                StatusCode::BAD_REQUEST,
                "Failed to parse body into Call protobuf",
            ))
        }),
        b"application/json" => {
            let parsed: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                Box::new(text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to parse body into JSON: {e}"),
                ))
            })?;
            json::from_value::<C>(&parsed).map_err(|e| {
                Box::new(text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to convert JSON into Call protobuf: {e}"),
                ))
            })
        }
        _ => Err(Box::new(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        ))),
    }
}

/// A call read and checked as upstream's `api` handlers do, in their order: [`read_call`], then
/// the call's type (`type_of`; a call without one, or with a number this build does not know,
/// is a 400 naming `call_name`, e.g. `master::Call`), then [`accepted`].
pub(crate) fn read_typed_call<C: Message + Name + Default, T>(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    call_name: &str,
    type_of: impl FnOnce(&C) -> Option<T>,
) -> Result<(C, T, Encoding), Box<Response>> {
    let call: C = read_call(method, headers, body)?;
    let Some(ty) = type_of(&call) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            format!("Failed to validate {call_name}: Expecting 'type' to be present"),
        )));
    };
    let encoding = accepted(headers)?;
    Ok((call, ty, encoding))
}

/// The encoding of the answer, or 406.
pub(crate) fn accepted(headers: &HeaderMap) -> Result<Encoding, Box<Response>> {
    negotiate(headers).ok_or_else(|| {
        Box::new(text(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
        ))
    })
}

/// A 200 answer carrying `message` in `encoding`.
pub(crate) fn answer<M: Message + Name>(encoding: Encoding, message: &M) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        encoding.encode(message),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_wins_whenever_acceptable() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Encoding::Json));
        assert_eq!(negotiate(&accept("*/*")), Some(Encoding::Json));
        assert_eq!(
            negotiate(&accept("application/x-protobuf")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            negotiate(&accept("application/x-protobuf, application/json;q=0.1")),
            Some(Encoding::Json)
        );
        assert_eq!(
            negotiate(&accept("application/json;q=0, application/x-protobuf")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
    }
}
