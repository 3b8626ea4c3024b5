//! [`Tls`]: the server's certificate and key (PEM files, or a generated development
//! certificate), reloadable while connections stay up.
//!
//! Each accepted connection takes the configuration current at its handshake; a reload
//! replaces it for later handshakes only, so nothing already connected is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
    /// The development certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Only certificates read from files can be reloaded.
    #[error("a generated certificate cannot be reloaded")]
    NotReloadable,
}

/// Where the certificate comes from.
#[derive(Clone, Debug)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Generated,
}

/// The server's TLS configuration, shared by every listener.
#[derive(Debug)]
pub struct Tls {
    source: Source,
    /// The configuration for the next handshakes, one for each ALPN setting.
    current: RwLock<Current>,
}

#[derive(Clone, Debug)]
struct Current {
    /// For the binary protocol (no ALPN).
    raw: Arc<ServerConfig>,
    /// For HTTP/1.1 and WebSocket (ALPN `http/1.1`).
    http: Arc<ServerConfig>,
    fingerprint: String,
}

impl Tls {
    /// Reads a certificate chain and a private key from PEM files.
    ///
    /// # Errors
    /// If a file cannot be read or parsed, or rustls refuses them.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let current = load(cert, key)?;
        Ok(Self {
            source: Source::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            current: RwLock::new(current),
        })
    }

    /// Generates a self-signed development certificate for `localhost` and `127.0.0.1`;
    /// returns it and its certificate in PEM, for clients to trust.
    ///
    /// # Errors
    /// If generation fails.
    pub fn self_signed() -> Result<(Self, String), TlsError> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let chain = vec![generated.cert.der().clone()];
        let current = configure(chain, key)?;
        let tls = Self {
            source: Source::Generated,
            current: RwLock::new(current),
        };
        Ok((tls, generated.cert.pem()))
    }

    /// Reads the PEM files again; later handshakes use the new certificate.
    ///
    /// # Errors
    /// As [`from_pem_files`](Self::from_pem_files); the old certificate stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Source::Files { cert, key } = &self.source else {
            return Err(TlsError::NotReloadable);
        };
        let current = load(cert, key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = current;
        Ok(())
    }

    /// The SHA-256 fingerprint of the certificate in force, as colon-separated hex.
    pub fn fingerprint(&self) -> String {
        self.read().fingerprint
    }

    pub(crate) fn raw_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.read().raw)
    }

    pub(crate) fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.read().http)
    }

    fn read(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn load(cert: &Path, key: &Path) -> Result<Current, TlsError> {
    let pem = |path: &Path, message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    configure(chain, key_der)
}

fn configure(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Current, TlsError> {
    let fingerprint = fingerprint(&chain[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let raw = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut http = raw.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Current {
        raw: Arc::new(raw),
        http: Arc::new(http),
        fingerprint,
    })
}

/// SHA-256 of a certificate, as colon-separated upper-case hex (as browsers show it).
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
