//! Fetching over HTTP and HTTPS (rustls) with ureq.
use super::{FetchStream, Limited, Transport, TransportError};
use std::time::Duration;

/// A repository served over `http://` or `https://`.
///
/// Paths are appended to the base URL as given: the base is never decoded or normalised,
/// and a missing trailing `/` is added.
pub struct HttpTransport {
    base: String,
    agent: ureq::Agent,
}

impl HttpTransport {
    /// A transport for files under `base_url`.
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        let parsed = url::Url::parse(base_url).map_err(|e| TransportError::Other {
            location: base_url.to_string(),
            reason: format!("invalid URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TransportError::Other {
                location: base_url.to_string(),
                reason: "only http:// and https:// URLs are supported".into(),
            });
        }
        let mut base = base_url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(60))
            .redirects(5)
            .build();
        Ok(HttpTransport { base, agent })
    }
}

impl Transport for HttpTransport {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        let location = self.location(relative);
        tracing::debug!(url = %location, "GET");
        let resp = match self.agent.get(&location).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(403 | 404, _)) => {
                return Err(TransportError::NotFound { location })
            }
            Err(ureq::Error::Status(code, _)) => {
                return Err(TransportError::Other {
                    location,
                    reason: format!("HTTP status {code}"),
                })
            }
            Err(e) => {
                return Err(TransportError::Other {
                    location,
                    reason: e.to_string(),
                })
            }
        };
        // Refuse early when the server announces more than allowed; the stream is capped anyway.
        if let Some(len) = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > max_len {
                return Err(TransportError::TooLarge {
                    location,
                    limit: max_len,
                });
            }
        }
        Ok(Box::new(Limited::new(resp.into_reader(), max_len)))
    }

    fn location(&self, relative: &str) -> String {
        format!("{}{}", self.base, relative)
    }
}
