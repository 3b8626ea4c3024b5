//! `chat-cli --tls`: a server with a self-signed certificate, reached with `--ca-file` (works)
//! and with only the web's roots (a clear error and a non-zero exit, not a hang).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chat_server::{ServerConfig, Tls};
use chat_testkit::{config, TestServer, PASSWORD};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// Runs chat-cli with `args` on the script `input`; returns its exit status, stdout, stderr.
async fn run_cli(args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .args(["--linger", "0.2"])
        .env("CHAT_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the client starts");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input.as_bytes()).await.expect("writes");
    drop(stdin);
    let output = timeout(WAIT, child.wait_with_output())
        .await
        .expect("the client ends in time")
        .expect("the client runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tls_with_a_ca_file_works_and_an_untrusted_certificate_is_a_clear_error() {
    let (tls, pem) = Tls::self_signed().expect("a certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("writes");
    let server_config = ServerConfig {
        tls: Some(Arc::new(tls)),
        ..ServerConfig::default()
    };
    let server = TestServer::start(&dir.path().join("chat.db"), config(), server_config).await;
    let addr = format!("localhost:{}", server.addr.port());

    let ca = ca.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = run_cli(
        &["--server", &addr, "--ca-file", &ca, "--device", "d1"],
        "/register alice\nhello over tls\n",
    )
    .await;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let (ok, stdout, stderr) = run_cli(
        &["--server", &addr, "--tls", "--device", "d2"],
        "/login alice\n",
    )
    .await;
    assert!(!ok, "an untrusted certificate must fail: {stdout}");
    assert!(
        stderr.contains("tls") && stderr.contains("certificate"),
        "{stderr}"
    );
    server.stop().await;
}
