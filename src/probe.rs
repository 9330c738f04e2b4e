//! The data-plane probes: TCP to a region's database endpoint and GET of
//! its health URL. Thin I/O behind [`Probe`], so the simulated cloud can
//! answer for a region in outage (the simulation's `SimProbe`). It sits below
//! both the cloud (which says which probe reaches its regions) and the
//! failover concern (which turns signals into verdicts).
//!
//! The endpoint to probe is the region's own cluster endpoint (writer
//! endpoint of the writer region, reader endpoint of a secondary), never the
//! global writer endpoint: that one follows the writer and says nothing about
//! a particular region.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::api::AuroraEngine;
use crate::clock::fmt_duration;

/// Long enough for a cross-region round trip and a TLS-less handshake,
/// short enough that a round of probes fits in the failover sampler's interval
/// (5 s).
/// One signal of one probe round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The component is there: serving, or in a transition AWS completes by
    /// itself (an in-region failover, a modification, a backup).
    Up,
    /// The component is broken, gone or unreachable; the detail says how.
    Down(String),
    /// No evidence either way: the API that would tell cannot be reached, or
    /// there is nothing to probe yet.
    NoData(String),
}

impl Signal {
    /// What a `Down` or `NoData` signal says of its cause.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Signal::Up => None,
            Signal::Down(d) | Signal::NoData(d) => Some(d),
        }
    }
}

pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait]
pub trait Probe: Send + Sync {
    /// TCP connect to `endpoint` (`host:port`) of `region`: `Up` when the
    /// connection is accepted within the timeout.
    async fn tcp(&self, region: &str, endpoint: &str) -> Signal;

    /// GET `url` of `region`: `Up` on any 2xx within the timeout.
    async fn http(&self, region: &str, url: &str) -> Signal;
}

/// `host:port` of an Aurora endpoint, with the engine's default port (the
/// operator does not set a custom one).
pub fn endpoint_address(host: &str, engine: AuroraEngine) -> String {
    let port = match engine {
        AuroraEngine::AuroraPostgresql => 5432,
        AuroraEngine::AuroraMysql => 3306,
    };
    format!("{host}:{port}")
}

/// The probes over the real network.
#[derive(Clone, Debug)]
pub struct NetworkProbe {
    pub timeout: Duration,
}

impl Default for NetworkProbe {
    fn default() -> Self {
        Self {
            timeout: PROBE_TIMEOUT,
        }
    }
}

#[async_trait]
impl Probe for NetworkProbe {
    async fn tcp(&self, _region: &str, endpoint: &str) -> Signal {
        match tokio::time::timeout(self.timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(_connected)) => Signal::Up,
            Ok(Err(error)) => Signal::Down(format!("connect to {endpoint}: {error}")),
            Err(_) => Signal::Down(format!(
                "connect to {endpoint}: no answer within {}",
                fmt_duration(self.timeout)
            )),
        }
    }

    async fn http(&self, _region: &str, url: &str) -> Signal {
        match tokio::time::timeout(self.timeout, get_status(url)).await {
            Ok(Ok(status)) if status.is_success() => Signal::Up,
            Ok(Ok(status)) => Signal::Down(format!("GET {url}: HTTP {}", status.as_u16())),
            Ok(Err(GetError::Unsupported(why))) => Signal::NoData(format!("GET {url}: {why}")),
            Ok(Err(GetError::Failed(why))) => Signal::Down(format!("GET {url}: {why}")),
            Err(_) => Signal::Down(format!(
                "GET {url}: no answer within {}",
                fmt_duration(self.timeout)
            )),
        }
    }
}

enum GetError {
    /// Not something this probe can check: no evidence about the region.
    Unsupported(String),
    /// The region did not answer properly: evidence.
    Failed(String),
}

async fn get_status(url: &str) -> Result<http::StatusCode, GetError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| GetError::Unsupported(format!("not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        // Validation refuses https; an object that slipped past it is a
        // configuration problem, not evidence about the region.
        return Err(GetError::Unsupported(
            "only plain http:// health URLs are supported".into(),
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| GetError::Unsupported("no host".into()))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| GetError::Failed(format!("connect: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| GetError::Failed(format!("handshake: {e}")))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "shopfleet-health-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| GetError::Unsupported(format!("request: {e}")))?;
    let result = sender
        .send_request(request)
        .await
        .map(|response| response.status())
        .map_err(|e| GetError::Failed(e.to_string()));
    // Only the status matters; the body is not read and the connection not
    // reused.
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn probe() -> NetworkProbe {
        NetworkProbe {
            timeout: Duration::from_millis(500),
        }
    }

    /// A one-connection-at-a-time HTTP server answering every request with
    /// `response`; it keeps the request text it received.
    async fn http_server(response: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buffer = vec![0u8; 4096];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                if !response.is_empty() {
                    let _ = socket.write_all(response.as_bytes()).await;
                } else {
                    // Accept and say nothing: a hung service.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        });
        (address, seen)
    }

    async fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        address
    }

    #[tokio::test]
    async fn tcp_to_a_listening_endpoint_is_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert_eq!(probe().tcp("eu-west-1", &address).await, Signal::Up);
    }

    #[tokio::test]
    async fn tcp_to_a_closed_port_is_down_with_the_endpoint_named() {
        let address = closed_port().await;
        let signal = probe().tcp("eu-west-1", &address).await;
        assert!(
            matches!(&signal, Signal::Down(d) if d.contains(&address)),
            "{signal:?}"
        );
    }

    #[tokio::test]
    async fn tcp_to_an_unanswering_address_is_down_within_the_timeout() {
        // TEST-NET-1 is never routed: the connection either hangs until the
        // timeout or fails at once, both are "down", neither may hang.
        let started = std::time::Instant::now();
        let signal = probe().tcp("eu-west-1", "192.0.2.1:5432").await;
        assert!(matches!(signal, Signal::Down(_)), "{signal:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_2xx_health_url_is_up_and_the_request_names_path_and_host() {
        let (address, seen) =
            http_server("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
        let url = format!("http://{address}/healthz?deep=1");
        assert_eq!(probe().http("eu-west-1", &url).await, Signal::Up);
        let request = seen.lock().unwrap()[0].clone();
        assert!(
            request.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.to_lowercase().contains(&format!("host: {address}")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_5xx_health_url_is_down_with_the_status() {
        let (address, _) =
            http_server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown").await;
        let signal = probe()
            .http("eu-west-1", &format!("http://{address}/"))
            .await;
        assert!(
            matches!(&signal, Signal::Down(d) if d.contains("HTTP 503")),
            "{signal:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_not_healthy() {
        let (address, _) =
            http_server("HTTP/1.1 302 Found\r\nlocation: /login\r\ncontent-length: 0\r\n\r\n")
                .await;
        let signal = probe()
            .http("eu-west-1", &format!("http://{address}/healthz"))
            .await;
        assert!(
            matches!(&signal, Signal::Down(d) if d.contains("HTTP 302")),
            "{signal:?}"
        );
    }

    #[tokio::test]
    async fn a_health_url_that_never_answers_is_down_after_the_timeout() {
        let (address, _) = http_server("").await;
        let started = std::time::Instant::now();
        let signal = probe()
            .http("eu-west-1", &format!("http://{address}/healthz"))
            .await;
        assert!(
            matches!(&signal, Signal::Down(d) if d.contains("no answer within 0.5s")),
            "{signal:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_health_url_on_a_closed_port_is_down() {
        let address = closed_port().await;
        let signal = probe()
            .http("eu-west-1", &format!("http://{address}/healthz"))
            .await;
        assert!(
            matches!(&signal, Signal::Down(d) if d.contains("connect")),
            "{signal:?}"
        );
    }

    #[tokio::test]
    async fn an_https_health_url_is_no_evidence_rather_than_a_failure() {
        let signal = probe()
            .http("eu-west-1", "https://orders.example/healthz")
            .await;
        assert!(
            matches!(&signal, Signal::NoData(d) if d.contains("http://")),
            "{signal:?}"
        );
    }

    #[test]
    fn the_endpoint_port_follows_the_engine() {
        assert_eq!(
            endpoint_address(
                "acme.cluster-x.rds.amazonaws.com",
                AuroraEngine::AuroraPostgresql
            ),
            "acme.cluster-x.rds.amazonaws.com:5432"
        );
        assert_eq!(endpoint_address("h", AuroraEngine::AuroraMysql), "h:3306");
    }
}
