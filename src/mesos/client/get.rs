//! Read-only GETs of a master's operator endpoints (`master/frameworks`, ...), with the client's
//! credentials, TLS, 307 redirects and 503 retries. A controller without a framework id uses them
//! to find its framework, and every controller to learn its tasks' labels (status updates do not
//! carry them).

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

use super::{ClientError, SCHEDULER_PATH, SchedulerClient, status_error};

impl SchedulerClient {
    /// GETs `path` (relative, e.g. `master/frameworks?framework_id=X`) from the master holding the
    /// current subscription or, without one, from the configured masters in turn. A 307 is
    /// followed (at most `max_redirects` hops); 503 and refused connections are retried with the
    /// client's backoff. Returns the body of a 2xx answer; any other answer is
    /// [`ClientError::Status`] with the master's text.
    pub async fn get(&self, path: &str) -> Result<Bytes, ClientError> {
        let started = Instant::now();
        let mut failures = 0u32;
        loop {
            self.check_gate()?;
            let leader = self.state().current.as_ref().map(|c| c.endpoint.clone());
            let (index, endpoint) = match leader {
                Some(endpoint) => (None, endpoint),
                None => match self.rotation_start() {
                    Ok((index, endpoint)) => (Some(index), endpoint),
                    Err(error) => {
                        self.wait_for_leader(error, &mut failures, started).await?;
                        continue;
                    }
                },
            };
            let url = base_of(&endpoint)
                .join(path)
                .map_err(|e| ClientError::InvalidMasterUrl {
                    url: format!("{endpoint} + {path}"),
                    reason: e.to_string(),
                })?;
            // Without a subscription this is the controller's first contact with the masters
            // (finding its framework), so failures are explained and noted as SUBSCRIBE's are.
            let rotating = index.is_some();
            let base = base_of(&endpoint);
            let error = match self.get_following_redirects(&url).await {
                Ok((response, url)) if response.status().is_success() => {
                    if rotating && super::is_html(&response) {
                        let error = ClientError::NotAMaster {
                            detail: format!("it answered GET {path} with an HTML page"),
                            url: Box::new(url),
                        };
                        return Err(self.explain_and_note(error, &base).await);
                    }
                    let body = response
                        .bytes()
                        .await
                        .map_err(|source| ClientError::Request {
                            url: Box::new(url.clone()),
                            source,
                        })?;
                    if rotating {
                        self.note_success(&super::origin(&url));
                    }
                    return Ok(body);
                }
                Ok((response, url)) => {
                    let retry = response.status() == StatusCode::SERVICE_UNAVAILABLE;
                    let error = status_error(response, url).await;
                    if !retry {
                        return Err(if rotating {
                            self.explain_and_note(error, &base).await
                        } else {
                            error
                        });
                    }
                    error
                }
                Err(error @ ClientError::Connect { .. }) => error,
                Err(error) if rotating => return Err(self.explain_and_note(error, &base).await),
                Err(error) => return Err(error),
            };
            if rotating {
                self.note_failure(&error);
            }
            failures += 1;
            let (pause, error) = self.after_failure(index, failures, started, error)?;
            tracing::debug!(%path, %error, ?pause, attempt = failures, "retrying");
            self.pause(pause).await;
        }
    }

    async fn get_following_redirects(
        &self,
        first: &Url,
    ) -> Result<(reqwest::Response, Url), ClientError> {
        let mut url = first.clone();
        let mut hops = 0;
        let mut tried = Vec::new();
        loop {
            tried.push(url.clone());
            let mut builder = self
                .inner
                .call_http
                .get(url.clone())
                .header(ACCEPT, "application/json");
            if let Some(authorization) = &self.inner.authorization {
                builder = builder.header(AUTHORIZATION, authorization.clone());
            }
            let response = builder.send().await.map_err(|source| {
                let at = Box::new(url.clone());
                if source.is_connect() {
                    ClientError::Connect { url: at, source }
                } else if source.is_timeout() {
                    ClientError::Timeout {
                        url: at,
                        after: self.inner.call_timeout,
                    }
                } else {
                    ClientError::Request { url: at, source }
                }
            })?;
            match self.next_hop(first, &url, &response, &mut hops, &tried)? {
                Some(next) => url = next,
                None => return Ok((response, url)),
            }
        }
    }
}

/// The master's base URL of a scheduler endpoint: `http://h:5050/api/v1/scheduler` gives
/// `http://h:5050/`, and a master behind a path prefix keeps it (`http://h/mesos/`). The
/// endpoint's longer form `/master/api/v1/scheduler` has the same base as the short one.
pub(super) fn base_of(endpoint: &Url) -> Url {
    let mut base = endpoint.clone();
    let path = endpoint.path();
    let prefix = path.strip_suffix(SCHEDULER_PATH).unwrap_or("/");
    let prefix = match prefix.strip_suffix("/master/") {
        Some(outer) => format!("{outer}/"),
        None if prefix.is_empty() => "/".to_owned(),
        None => prefix.to_owned(),
    };
    base.set_path(&prefix);
    base.set_query(None);
    base.set_fragment(None);
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_a_path_prefix() {
        for (endpoint, base) in [
            ("http://h:5050/api/v1/scheduler", "http://h:5050/"),
            ("https://h/mesos/api/v1/scheduler", "https://h/mesos/"),
            ("http://h:5050/master/api/v1/scheduler", "http://h:5050/"),
            (
                "http://h/mesosmaster/api/v1/scheduler",
                "http://h/mesosmaster/",
            ),
            ("http://h/x/master/api/v1/scheduler", "http://h/x/"),
        ] {
            let endpoint = Url::parse(endpoint).unwrap();
            assert_eq!(base_of(&endpoint).as_str(), base);
        }
        let base = base_of(&Url::parse("http://h:5050/api/v1/scheduler").unwrap());
        assert_eq!(
            base.join("master/frameworks?framework_id=a")
                .unwrap()
                .as_str(),
            "http://h:5050/master/frameworks?framework_id=a"
        );
    }
}
