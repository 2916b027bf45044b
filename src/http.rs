//! Where every HTTP client of the crate (and of its tests) starts, so that all share one TLS set-up
//! and one proxy rule.

/// A `reqwest` client builder with rustls on the *ring* crypto provider and no proxy from the
/// environment (credentials and event streams go straight to the masters, status requests to
/// this machine). Callers add their timeouts and redirect policy.
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a provider of its own (`rustls-no-provider`): its default,
    // aws-lc-rs, compiles a C library in every clean build, and ring serves the same TLS 1.2/1.3
    // suites a Mesos master offers. rustls takes the provider from the process default, which
    // can be installed once; a second install is refused and changes nothing, so this is cheap
    // and safe to call before every client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy()
}

/// A reqwest error with its causes (`error sending request for url (...): client error (Connect):
/// tcp connect error: Connection refused`): reqwest's own message does not say why a connection
/// failed; its sources do.
pub fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
