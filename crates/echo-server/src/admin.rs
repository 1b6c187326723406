//! The admin endpoint: `/metrics`, `/healthz`, `/readyz` and `/info` over
//! HTTP/1.1, served by hyper.
//!
//! What each path answers is decided by [`Admin::respond`], free of I/O; the
//! serving around it bounds what a client can hold: a request head of at
//! most [`MAX_HEAD_LEN`] bytes, sent within [`HEADER_READ_TIMEOUT`], and at
//! most [`MAX_ADMIN_CONNECTIONS`] connections at once. The connection bound
//! is far above what probes and scrapers need, so that a few hundred clients
//! stalled mid-request cannot keep a health check or a scrape out, and the
//! header timeout makes every stalled client leave within seconds.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, warn};

use crate::Metrics;
use crate::accept::Acceptor;

/// The media type of the OpenMetrics text format, which Prometheus asks for
/// and understands.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The media type of the short texts of the other paths and of errors.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The media type of `/info`.
const JSON_CONTENT_TYPE: &str = "application/json";

/// The largest request head read from a client, in bytes (hyper's smallest
/// read buffer). A probe or a scrape needs a few hundred.
pub(crate) const MAX_HEAD_LEN: usize = 8 * 1024;

/// How long a client has to send a whole request head, counted from when it
/// connects or, on a kept-alive connection, from the end of the previous
/// response; one that trickles its bytes is closed too.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one admin connection is served at most, kept alive or not. The
/// responses are made at once, so this bounds a client that does not read
/// them (hyper has no write timeout) and would otherwise hold its slot.
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(30);

/// How many admin connections are served at once; beyond it, new ones are
/// closed at once. Each waiting one costs a task and its read buffer, and
/// leaves within [`HEADER_READ_TIMEOUT`] if it sends nothing.
pub(crate) const MAX_ADMIN_CONNECTIONS: usize = 1024;

/// What the admin endpoint knows and answers with.
#[derive(Debug)]
pub(crate) struct Admin {
    metrics: Arc<Metrics>,
    /// Cancelled when a shutdown starts: from then on `/readyz` says 503.
    shutting_down: CancellationToken,
    /// `/info` without its uptime, which changes.
    info: serde_json::Map<String, serde_json::Value>,
    started: Instant,
}

impl Admin {
    /// An endpoint serving `metrics`, not ready once `shutting_down` is
    /// cancelled, describing itself with `info` (to which the uptime is
    /// added).
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        shutting_down: CancellationToken,
        info: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            metrics,
            shutting_down,
            info,
            started: Instant::now(),
        }
    }

    /// The response to a `method` request for `path` (the query ignored).
    pub(crate) fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let known = ["/metrics", "/healthz", "/readyz", "/info"];
        if !known.contains(&path) {
            return text(
                StatusCode::NOT_FOUND,
                "not found: the admin endpoint serves /metrics, /healthz, /readyz and /info\n"
                    .to_owned(),
            );
        }
        if method != Method::GET {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers GET only\n"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        match path {
            "/metrics" => with_type(StatusCode::OK, METRICS_CONTENT_TYPE, self.metrics.encode()),
            "/readyz" if self.shutting_down.is_cancelled() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down\n".to_owned(),
            ),
            "/readyz" => text(StatusCode::OK, "ready\n".to_owned()),
            "/info" => {
                let mut info = self.info.clone();
                info.insert(
                    "uptime_secs".to_owned(),
                    self.started.elapsed().as_secs_f64().into(),
                );
                with_type(
                    StatusCode::OK,
                    JSON_CONTENT_TYPE,
                    serde_json::Value::Object(info).to_string(),
                )
            }
            // `/healthz`: answering at all is the health.
            _ => text(StatusCode::OK, "ok\n".to_owned()),
        }
    }
}

/// A response of `status` with a plain text `body`.
fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, TEXT_CONTENT_TYPE, body)
}

/// A response of `status` with `body` of media type `content_type`.
fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serves the admin endpoint on `listener` until `stop` is cancelled, then
/// returns, closing the admin connections still open.
pub(crate) async fn serve_admin(listener: TcpListener, admin: Arc<Admin>, stop: CancellationToken) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    let mut connections = JoinSet::new();
    let mut acceptor = Acceptor::new(&listener, "admin");
    loop {
        let (stream, peer) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = stop.cancelled() => break,
        };
        // Finished connections are reaped here, so the set holds open ones.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            warn!(%peer, "admin connection refused: {MAX_ADMIN_CONNECTIONS} are open");
            continue;
        };
        let admin = Arc::clone(&admin);
        connections.spawn(
            async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = admin.respond(request.method(), request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_HEAD_LEN);
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(MAX_CONNECTION_TIME, connection).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => debug!(%error, "admin connection failed"),
                    Err(_) => debug!("admin connection closed: it outlived its time"),
                }
                drop(permit);
            }
            .instrument(debug_span!("admin", %peer)),
        );
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    use super::*;

    /// A bound on every wait, so that a bug fails a test instead of hanging
    /// it.
    const WAIT: Duration = Duration::from_secs(10);

    fn admin() -> Admin {
        let mut info = serde_json::Map::new();
        info.insert("instance".to_owned(), "test".into());
        Admin::new(Arc::new(Metrics::new()), CancellationToken::new(), info)
    }

    fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let collected = collect_now(response.into_body().collect()).unwrap();
        String::from_utf8(collected.to_bytes().to_vec()).unwrap()
    }

    /// A whole body is ready at once: collecting it needs no runtime.
    fn collect_now<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn paths_route_as_documented() {
        let admin = admin();
        for (method, path, status) in [
            (Method::GET, "/metrics", 200),
            (Method::GET, "/healthz", 200),
            (Method::GET, "/readyz", 200),
            (Method::GET, "/info", 200),
            (Method::GET, "/", 404),
            (Method::GET, "/metrics/", 404),
            (Method::GET, "/Metrics", 404),
            (Method::POST, "/favicon.ico", 404),
            (Method::POST, "/metrics", 405),
            (Method::HEAD, "/readyz", 405),
            (Method::DELETE, "/info", 405),
        ] {
            let response = admin.respond(&method, path);
            assert_eq!(response.status().as_u16(), status, "{method} {path}");
            if status == 405 {
                assert_eq!(response.headers()[ALLOW], "GET");
            }
        }
    }

    #[test]
    fn metrics_are_the_openmetrics_text() {
        let admin = admin();
        admin.metrics.connection_accepted();
        let response = admin.respond(&Method::GET, "/metrics");
        assert_eq!(response.headers()[CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert_eq!(body(response), admin.metrics.encode());
    }

    #[test]
    fn readiness_ends_when_the_shutdown_starts() {
        let admin = admin();
        assert_eq!(admin.respond(&Method::GET, "/readyz").status(), 200);
        admin.shutting_down.cancel();
        assert_eq!(admin.respond(&Method::GET, "/readyz").status(), 503);
        assert_eq!(admin.respond(&Method::GET, "/healthz").status(), 200);
    }

    #[test]
    fn info_adds_the_uptime() {
        let response = admin().respond(&Method::GET, "/info");
        assert_eq!(response.headers()[CONTENT_TYPE], JSON_CONTENT_TYPE);
        let info: serde_json::Value = serde_json::from_str(&body(response)).unwrap();
        assert_eq!(info["instance"], "test");
        assert!(info["uptime_secs"].as_f64().unwrap() >= 0.0, "{info}");
    }

    /// An endpoint served for a test.
    struct Endpoint {
        addr: SocketAddr,
        stop: CancellationToken,
        serving: JoinHandle<()>,
    }

    async fn serve() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve_admin(listener, Arc::new(admin()), stop.clone()));
        Endpoint {
            addr,
            stop,
            serving,
        }
    }

    /// Sends a GET for `path` on `stream` and reads its response: the
    /// status code and the body, read by its `content-length`.
    async fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        timeout(WAIT, stream.write_all(request.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .expect("a content-length")
                    .parse()
                    .unwrap();
                if rest.len() >= len {
                    let status = head[9..12].parse().unwrap();
                    return (status, rest[..len].to_owned());
                }
            }
            let n = timeout(WAIT, stream.read(&mut buffer))
                .await
                .expect("no response in time")
                .unwrap();
            assert!(n > 0, "closed before the response: {text:?}");
            received.extend_from_slice(&buffer[..n]);
        }
    }

    #[tokio::test]
    async fn one_connection_serves_many_requests() {
        let endpoint = serve().await;
        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        for path in ["/metrics", "/healthz", "/readyz", "/nope", "/metrics"] {
            let (status, body) = get(&mut stream, path).await;
            let expected = if path == "/nope" { 404 } else { 200 };
            assert_eq!(status, expected, "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn hundreds_of_stalled_clients_keep_no_probe_out() {
        let endpoint = serve().await;
        let mut stalled = Vec::new();
        for _ in 0..300 {
            let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: loc")
                .await
                .unwrap();
            stalled.push(stream);
        }
        for path in ["/readyz", "/metrics"] {
            let mut probe = TcpStream::connect(endpoint.addr).await.unwrap();
            assert_eq!(get(&mut probe, path).await.0, 200, "{path}");
        }
        // The stalled ones are closed at the header timeout, unanswered.
        let mut received = Vec::new();
        timeout(WAIT, stalled[0].read_to_end(&mut received))
            .await
            .expect("a stalled client was not closed")
            .ok();
        assert!(
            !received.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&received)
        );
    }

    #[tokio::test]
    async fn a_head_beyond_the_bound_is_refused() {
        let endpoint = serve().await;
        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        let mut request = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        request.resize(MAX_HEAD_LEN * 4, b'a');
        // The server may close before taking it all.
        let _ = timeout(WAIT, stream.write_all(&request)).await.unwrap();
        let mut received = Vec::new();
        let _ = timeout(WAIT, stream.read_to_end(&mut received))
            .await
            .unwrap();
        assert!(
            received.is_empty() || received.starts_with(b"HTTP/1.1 431"),
            "{:?}",
            String::from_utf8_lossy(&received)
        );
    }

    #[tokio::test]
    async fn stopping_closes_the_endpoint_and_its_connections() {
        let endpoint = serve().await;
        let mut open = TcpStream::connect(endpoint.addr).await.unwrap();
        assert_eq!(get(&mut open, "/healthz").await.0, 200);
        endpoint.stop.cancel();
        timeout(WAIT, endpoint.serving).await.unwrap().unwrap();
        assert!(TcpStream::connect(endpoint.addr).await.is_err());
        let mut received = Vec::new();
        let _ = timeout(WAIT, open.read_to_end(&mut received))
            .await
            .unwrap();
        assert!(received.is_empty());
    }
}
