//! WebSocket and TLS transports: the same frames as over TCP, one chat-proto frame per binary
//! WebSocket message (`ws://host:port/ws`), or the binary protocol inside TLS; and the TLS
//! client configuration (the system's web roots, or a given CA file).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chat_proto::{decode_frame, encode, ClientCodec, ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector as RustlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::Framed;

use crate::transport::{Connector, Transport};
use crate::Error;

/// A chat connection over a WebSocket on any stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    socket: WebSocketStream<S>,
    max_frame_len: usize,
}

/// A WebSocket over plain TCP.
pub type Ws = WebSocket<TcpStream>;

/// The binary protocol inside TLS.
pub type TlsTcp = Framed<TlsStream<TcpStream>, ClientCodec>;

/// Where and how to open a WebSocket: the server's web address, TLS (for `wss`), and the
/// `Origin` to present (browsers always send one; programs need not).
#[derive(Clone, Debug)]
pub struct WsOptions {
    /// The web listener's address.
    pub addr: SocketAddr,
    /// TLS configuration and the server name to verify, for `wss`.
    pub tls: Option<(Arc<ClientConfig>, String)>,
    /// The `Origin` header to send, if any.
    pub origin: Option<String>,
}

/// Opens `ws://addr/ws` (no `Origin`).
///
/// # Errors
/// [`Error::Io`] if the connection fails, [`Error::WebSocket`] if the upgrade is refused.
pub async fn ws(addr: SocketAddr) -> Result<Ws, Error> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    upgrade(stream, &format!("ws://{addr}/ws"), None).await
}

/// Opens `ws://…/ws` over an already connected `stream` (for sockets set up by the caller,
/// e.g. with a small receive buffer).
///
/// # Errors
/// [`Error::Io`] if the stream has no peer, [`Error::WebSocket`] if the upgrade is refused.
pub async fn ws_on(stream: TcpStream) -> Result<Ws, Error> {
    let addr = stream.peer_addr()?;
    let _ = stream.set_nodelay(true);
    upgrade(stream, &format!("ws://{addr}/ws"), None).await
}

/// Opens a WebSocket as `options` say, over TLS or not.
///
/// # Errors
/// As [`ws`], and [`Error::Tls`] if the TLS handshake fails (e.g. an untrusted certificate).
pub async fn ws_with(options: &WsOptions) -> Result<WebSocket<MaybeTls>, Error> {
    let stream = TcpStream::connect(options.addr).await?;
    let _ = stream.set_nodelay(true);
    let origin = options.origin.as_deref();
    match &options.tls {
        None => {
            upgrade(
                MaybeTls::Plain(stream),
                &format!("ws://{}/ws", options.addr),
                origin,
            )
            .await
        }
        Some((config, name)) => {
            let stream = handshake(stream, config.clone(), name).await?;
            let url = format!("wss://{name}:{}/ws", options.addr.port());
            upgrade(MaybeTls::Tls(Box::new(stream)), &url, origin).await
        }
    }
}

async fn upgrade<S>(stream: S, url: &str, origin: Option<&str>) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::WebSocket(e.to_string()))?;
    if let Some(origin) = origin {
        let value = HeaderValue::from_str(origin).map_err(|e| Error::WebSocket(e.to_string()))?;
        request.headers_mut().insert("origin", value);
    }
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| Error::WebSocket(e.to_string()))?;
    Ok(WebSocket {
        socket,
        max_frame_len: chat_proto::MAX_FRAME_LEN_CAP,
    })
}

impl<S> WebSocket<S> {
    /// The WebSocket, for raw use (tests of hostile input).
    pub fn get_mut(&mut self) -> &mut WebSocketStream<S> {
        &mut self.socket
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WebSocket<S> {
    async fn send(&mut self, msg: ClientMessage) -> Result<(), Error> {
        let frame = encode(&msg, self.max_frame_len)?;
        self.socket
            .send(Message::Binary(frame.into_bytes()))
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))
    }

    async fn feed(&mut self, msg: ClientMessage) -> Result<(), Error> {
        let frame = encode(&msg, self.max_frame_len)?;
        self.socket
            .feed(Message::Binary(frame.into_bytes()))
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), Error> {
        SinkExt::flush(&mut self.socket)
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))
    }

    async fn recv(&mut self) -> Option<Result<ServerMessage, Error>> {
        loop {
            let msg = match self.socket.next().await? {
                Ok(msg) => msg,
                Err(error) => return Some(Err(Error::WebSocket(error.to_string()))),
            };
            match msg {
                Message::Binary(bytes) => {
                    return Some(match decode_frame(&bytes, self.max_frame_len) {
                        Ok(Some((msg, used))) if used == bytes.len() => Ok(msg),
                        Ok(_) => Err(Error::WebSocket("a message that is not one frame".into())),
                        Err(error) => Err(error.into()),
                    })
                }
                Message::Close(_) => return None,
                Message::Text(_) => {
                    return Some(Err(Error::WebSocket("unexpected text message".into())))
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// A TCP stream with or without TLS.
#[derive(Debug)]
pub enum MaybeTls {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A TLS client configuration trusting `ca_file` (PEM) if given, else the web's root
/// certificates (webpki-roots).
///
/// # Errors
/// [`Error::Tls`] if the file cannot be read or holds no usable certificate.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls(format!("{}: no certificate", path.display())));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn handshake(
    stream: TcpStream,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream<TcpStream>, Error> {
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| Error::Tls(format!("{name}: {e}")))?;
    RustlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|e| Error::Tls(format!("handshake with {name} failed: {e}")))
}

/// Connects with TLS to `addr`, verifying the certificate for `name`.
///
/// # Errors
/// [`Error::Io`] if the connection fails; [`Error::Tls`] if the certificate is not trusted or
/// not for `name` (a clear error, not a hang).
pub async fn tls(addr: &str, name: &str, config: Arc<ClientConfig>) -> Result<TlsTcp, Error> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let stream = tokio::time::timeout(crate::DEFAULT_WAIT, handshake(stream, config, name))
        .await
        .map_err(|_| Error::Tls(format!("no TLS handshake from {addr}")))??;
    Ok(Framed::new(stream, ClientCodec::new()))
}

/// Connects with TLS to one address, once per (re)connection.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    /// `host:port`.
    pub addr: String,
    /// The name the certificate must be for.
    pub name: String,
    /// Trusted roots.
    pub config: Arc<ClientConfig>,
}

impl Connector for TlsConnector {
    type Transport = TlsTcp;

    async fn connect(&mut self) -> Result<TlsTcp, Error> {
        tls(&self.addr, &self.name, self.config.clone()).await
    }
}

/// Opens WebSockets to one web listener, once per (re)connection.
#[derive(Clone, Debug)]
pub struct WsConnector(pub WsOptions);

impl Connector for WsConnector {
    type Transport = WebSocket<MaybeTls>;

    async fn connect(&mut self) -> Result<Self::Transport, Error> {
        ws_with(&self.0).await
    }
}
