//! The web listener: HTTP/1.1 (HTTPS with TLS) serving the browser client's static files,
//! `GET /ws` (the WebSocket front end), `GET /peers` (other nodes' WebSocket URLs, for the
//! page to fail over to), `GET /healthz` and `GET /metrics`.
//!
//! Requests are bounded (headers only: 16 KiB, read within 10 s; no bodies are read). A
//! WebSocket upgrade is refused (403) unless its `Origin` is the server's own (the `Host` the
//! request names, under the listener's scheme) or an allowed one, which stops cross-site
//! WebSocket hijacking; requests without an `Origin` (not from a browser) are accepted. Pages
//! are served with a strict Content-Security-Policy: scripts and styles from this origin only,
//! nothing inline, connections to this origin and the peers only.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Transport;
use crate::pump;
use crate::server::{connect, handshake, no_delay, peer_ip, Shared};
use crate::transport::ws;

/// The response to a connection over the limit.
pub(crate) const SERVER_FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n";

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The browser client's files, embedded in the binary: path, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
    ("/app.js", JS, include_str!("../web/app.js")),
    (
        "/lib/chat-proto.js",
        JS,
        include_str!("../web/lib/chat-proto.js"),
    ),
    ("/lib/client.js", JS, include_str!("../web/lib/client.js")),
    (
        "/lib/commands.js",
        JS,
        include_str!("../web/lib/commands.js"),
    ),
    ("/lib/format.js", JS, include_str!("../web/lib/format.js")),
    (
        "/lib/moderation.js",
        JS,
        include_str!("../web/lib/moderation.js"),
    ),
    (
        "/lib/timeline.js",
        JS,
        include_str!("../web/lib/timeline.js"),
    ),
    ("/lib/reads.js", JS, include_str!("../web/lib/reads.js")),
    ("/lib/search.js", JS, include_str!("../web/lib/search.js")),
    (
        "/lib/rotation.js",
        JS,
        include_str!("../web/lib/rotation.js"),
    ),
    (
        "/components/sidebar.js",
        JS,
        include_str!("../web/components/sidebar.js"),
    ),
    (
        "/components/conversation.js",
        JS,
        include_str!("../web/components/conversation.js"),
    ),
    (
        "/components/login.js",
        JS,
        include_str!("../web/components/login.js"),
    ),
    (
        "/components/dialog.js",
        JS,
        include_str!("../web/components/dialog.js"),
    ),
    (
        "/components/search.js",
        JS,
        include_str!("../web/components/search.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

type Body = Full<Bytes>;

/// Serves one web connection (TLS first, if configured) until it closes or shutdown.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, permit: OwnedSemaphorePermit) {
    no_delay(&stream);
    let peer = peer_ip(&stream);
    let permit = Arc::new(permit);
    match shared.config.tls.clone() {
        None => serve_http(stream, shared, permit, false, peer).await,
        Some(tls) => {
            if let Some(stream) = handshake(tls.http_acceptor(), stream, &shared.cancel).await {
                serve_http(stream, shared, permit, true, peer).await;
            }
        }
    }
}

async fn serve_http<S>(
    stream: S,
    shared: Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
    secure: bool,
    peer: Option<IpAddr>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let response = handle(req, &handler, &permit, secure, peer);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended");
            }
        }
        () = shared.stopping.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

fn handle(
    mut req: Request<Incoming>,
    shared: &Arc<Shared>,
    permit: &Arc<OwnedSemaphorePermit>,
    secure: bool,
    peer: Option<IpAddr>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    match req.uri().path() {
        "/ws" => upgrade(&mut req, shared, permit, secure, &host, peer),
        "/healthz" => {
            if shared.draining.is_cancelled() {
                plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else if !shared.engine.stats().storage_available {
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage cannot take writes\n",
                )
            } else {
                plain(StatusCode::OK, "ok\n")
            }
        }
        "/peers" => peers(&shared.config.web_peers),
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(shared.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        path => match FILES.iter().find(|(p, _, _)| *p == path) {
            Some((_, content_type, body)) => {
                file(content_type, body, secure, &host, &shared.config.web_peers)
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// Checks a `--web-peer` value: a `ws://` or `wss://` URL of host, port and path in plain
/// ASCII (letters, digits, `.-_:/[]`), so it can stand in a Content-Security-Policy and in
/// JSON as it is.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn web_peer(url: &str) -> Result<String, String> {
    let url = url.trim();
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return Err(format!("{url:?}: a peer is a ws:// or wss:// URL"));
    };
    let fine = |c: char| c.is_ascii_alphanumeric() || ".-_:/[]".contains(c);
    if rest.is_empty() || rest.starts_with('/') || !rest.chars().all(fine) {
        return Err(format!(
            "{url:?}: a peer is ws://HOST:PORT/PATH (letters, digits and .-_:/[] only)"
        ));
    }
    Ok(url.to_owned())
}

/// `/peers`: `{"peers": [URL, …]}`, the other nodes' WebSocket URLs.
fn peers(urls: &[String]) -> Response<Body> {
    // Peers are checked at start (`web_peer`): nothing in them needs escaping in JSON.
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let body = format!("{{\"peers\":[{}]}}\n", list.join(","));
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn file(
    content_type: &'static str,
    body: &'static str,
    secure: bool,
    host: &str,
    peers: &[String],
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    let ws = if secure { "wss" } else { "ws" };
    // Peers are checked at start (`web_peer`): no space, quote or semicolon can be in them.
    let peers: String = peers.iter().map(|p| format!(" {p}")).collect();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {ws}://{host}{peers}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert("content-security-policy", csp);
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether `origin` may open a WebSocket: the page's own origin or an allowed one.
fn origin_allowed(origin: &str, host: &str, secure: bool, allowed: &[String]) -> bool {
    let scheme = if secure { "https" } else { "http" };
    origin == format!("{scheme}://{host}") || allowed.iter().any(|a| a == origin)
}

fn upgrade(
    req: &mut Request<Incoming>,
    shared: &Arc<Shared>,
    permit: &Arc<OwnedSemaphorePermit>,
    secure: bool,
    host: &str,
    peer: Option<IpAddr>,
) -> Response<Body> {
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket upgrade is expected here\n",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "WebSocket version 13 is required\n",
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key\n");
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, host, secure, &shared.config.allowed_origins) {
            tracing::warn!(origin, "WebSocket from a foreign origin refused");
            shared.metrics.bad_origins.inc();
            return plain(StatusCode::FORBIDDEN, "this origin may not connect\n");
        }
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    let task = shared.clone();
    let permit = permit.clone();
    // The set-up, then the pump (as for TCP, `server::serve_tcp`): the task holds the larger
    // of the two, not the set-up's state beside the pump for the connection's whole life. The
    // set-up (the upgrade, the WebSocket's construction, the engine's connect) is the larger,
    // so it is boxed: the task is sized by the pump.
    let set_up = Box::pin(async move {
        let upgraded = tokio::select! {
            () = task.stopping.cancelled() => return None,
            upgraded = on_upgrade => match upgraded {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade failed");
                    return None;
                }
            },
        };
        let max_frame_len = task.engine.config().max_frame_len;
        let config = ws::config(max_frame_len);
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let conn = connect(&task, peer).await;
        let open = task.metrics.open(Transport::Ws);
        let io = ws::WsStream::new(socket, max_frame_len);
        Some((io, conn, task.cancel.clone(), open))
    });
    shared.tasks.spawn(set_up.then(|connected| match connected {
        Some((io, conn, cancel, open)) => {
            Either::Left(pump::serve(io, conn, cancel, open).map(|()| drop(permit)))
        }
        None => Either::Right(std::future::ready(())),
    }));
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_own_or_allowed_origins_may_connect() {
        let allowed = vec!["https://chat.example".to_owned()];
        assert!(origin_allowed(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            false,
            &allowed
        ));
        assert!(origin_allowed(
            "https://chat.example",
            "127.0.0.1:8080",
            false,
            &allowed
        ));
        assert!(!origin_allowed(
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            false,
            &allowed
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            "127.0.0.1:8080",
            false,
            &allowed
        ));
        assert!(!origin_allowed("null", "127.0.0.1:8080", false, &[]));
    }

    #[test]
    fn peers_are_websocket_urls_that_fit_a_policy() {
        for good in [
            "ws://10.0.0.2:8080/ws",
            "wss://chat2.example.org/ws",
            "ws://[::1]:8080/ws",
        ] {
            assert_eq!(web_peer(good).as_deref(), Ok(good));
        }
        for bad in [
            "http://10.0.0.2/ws",
            "ws://",
            "wss:///ws",
            "ws://a.example/ws; script-src *",
            "ws://a.example/ws'",
            "ws://a.example/\"x",
            "ws://a b/ws",
        ] {
            assert!(web_peer(bad).is_err(), "{bad}");
        }
    }
}
