//! TLS on both listeners: the binary protocol inside TLS and WebSocket over TLS (wss) with a
//! self-signed certificate; clear errors for an untrusted or mismatched certificate; and the
//! real binary reloading its certificate on SIGHUP without dropping connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_client::{tls, tls_config, ws_with, Error, Session, WsOptions};
use chat_server::{ServerConfig, Tls};
use chat_testkit::*;
use tokio::process::Command;
use tokio::time::{timeout, Instant};

#[tokio::test]
async fn both_listeners_speak_tls_with_a_self_signed_certificate() {
    let (server_tls, pem) = Tls::self_signed().expect("a certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).expect("writes");
    let tls_on = ServerConfig {
        tls: Some(Arc::new(server_tls)),
        ..ServerConfig::default()
    };
    let server = TestServer::start(&dir.path().join("chat.db"), config(), tls_on).await;
    let trusted = tls_config(Some(&ca)).expect("a client configuration");

    // The binary protocol inside TLS.
    let transport = tls(&server.addr.to_string(), "localhost", trusted.clone())
        .await
        .expect("a TLS connection");
    let mut alice = Session::handshake(transport, "test")
        .await
        .expect("welcomed");
    alice
        .register("alice", PASSWORD, "a")
        .await
        .expect("registers");

    // WebSocket over TLS.
    let options = WsOptions {
        addr: server.web,
        tls: Some((trusted.clone(), "localhost".into())),
        origin: Some(format!("https://localhost:{}", server.web.port())),
    };
    let transport = ws_with(&options).await.expect("a wss connection");
    let mut bob = Session::handshake(transport, "test")
        .await
        .expect("welcomed");
    bob.register("bob", PASSWORD, "b").await.expect("registers");
    alice
        .send_text(user("bob"), 1, "over tls")
        .await
        .expect("stored");
    bob.until(text_is("over tls"))
        .await
        .expect("arrives over wss");

    // Plain connections to a TLS listener get nowhere; untrusted and mismatched
    // certificates are clear errors, not hangs.
    let untrusted = tls_config(None).expect("web roots");
    let refused = timeout(WAIT, tls(&server.addr.to_string(), "localhost", untrusted))
        .await
        .expect("answers in time");
    assert!(
        matches!(&refused, Err(Error::Tls(e)) if e.contains("certificate")),
        "{refused:?}"
    );
    let mismatch = timeout(
        WAIT,
        tls(&server.addr.to_string(), "chat.example.org", trusted),
    )
    .await
    .expect("answers in time");
    assert!(
        matches!(&mismatch, Err(Error::Tls(e)) if e.contains("certificate")),
        "{mismatch:?}"
    );
    server.stop().await;
}

/// Writes a fresh certificate and key to `cert.pem` and `key.pem`; returns the certificate.
fn write_certificate(dir: &Path) -> String {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).expect("writes");
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).expect("writes");
    generated.cert.pem()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = write_certificate(dir.path());
    let first_ca = dir.path().join("first.pem");
    std::fs::write(&first_ca, first).expect("writes");
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(dir.path().join("chat.db"))
        .arg("--tls-cert")
        .arg(dir.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .args(["--argon2-memory-kib", "64", "--argon2-iterations", "1"])
        .env("RUST_LOG", "warn");
    let (child, ready) = spawn_ready(&mut command).await.expect("the server starts");
    let addr = ready.tcp.to_string();

    let old = tls_config(Some(&first_ca)).expect("trusts the first");
    let transport = tls(&addr, "localhost", old.clone())
        .await
        .expect("connects");
    let mut alice = Session::handshake(transport, "test")
        .await
        .expect("welcomed");
    alice
        .register("alice", PASSWORD, "a")
        .await
        .expect("registers");

    // A new certificate on disk, then SIGHUP.
    let second = write_certificate(dir.path());
    let second_ca = dir.path().join("second.pem");
    std::fs::write(&second_ca, second).expect("writes");
    let new = tls_config(Some(&second_ca)).expect("trusts the second");
    let pid = child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());

    // New handshakes get the new certificate (the signal is handled asynchronously).
    let deadline = Instant::now() + WAIT;
    let transport = loop {
        match tls(&addr, "localhost", new.clone()).await {
            Ok(transport) => break transport,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the new certificate was never served: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut bob = Session::handshake(transport, "test")
        .await
        .expect("welcomed");
    bob.register("bob", PASSWORD, "b").await.expect("registers");
    assert!(
        tls(&addr, "localhost", old).await.is_err(),
        "the old certificate is gone"
    );

    // The connection made before the reload still works.
    alice
        .send_text(user("bob"), 1, "still connected")
        .await
        .expect("stored");
    bob.until(text_is("still connected"))
        .await
        .expect("arrives");
    drop(child);
}
