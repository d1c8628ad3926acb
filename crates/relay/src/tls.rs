//! HTTPS for the relay with a certificate of its own, made on first start and kept in the data
//! directory (`tls/cert.der`, `tls/key.der`, the key readable by its owner only). Devices trust
//! it by its pin, the SHA-256 of the certificate, given after `#sha256=` in the relay's address
//! (the relay prints the whole address; invitations carry it), so no certificate authority and
//! no domain name are needed on a street office's network.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::RelayError;
use crate::traffic::{CountingStream, Traffic};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The relay's TLS identity.
#[derive(Clone)]
pub struct Tls {
    /// The server configuration (TLS 1.2 and 1.3, ring).
    pub config: Arc<ServerConfig>,
    /// The certificate's pin: hex SHA-256 of its DER encoding.
    pub pin: String,
}

fn io_err(path: &Path, source: std::io::Error) -> RelayError {
    RelayError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file (never half a key on disk), readable by
/// the owner only when `secret`.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), RelayError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Loads the relay's certificate and key from `data/tls`, making them on first use.
pub fn load_or_create(data: &Path) -> Result<Tls, RelayError> {
    let dir: PathBuf = data.join("tls");
    let (cert_path, key_path) = (dir.join("cert.der"), dir.join("key.der"));
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let made = rcgen::generate_simple_self_signed(vec!["linli-relay".to_string()])
            .map_err(|e| RelayError::Tls(format!("cannot make a certificate: {e}")))?;
        write_new(&key_path, &made.signing_key.serialize_der(), true)?;
        write_new(&cert_path, made.cert.der(), false)?;
    }
    let cert = std::fs::read(&cert_path).map_err(|e| io_err(&cert_path, e))?;
    let key = std::fs::read(&key_path).map_err(|e| io_err(&key_path, e))?;
    let pin = Sha256::digest(&cert)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| {
            RelayError::Tls(format!(
                "the certificate or key in {} cannot be used: {e}",
                dir.display()
            ))
        })?;
    Ok(Tls {
        config: Arc::new(config),
        pin,
    })
}

/// A listener whose connections are TLS sessions over counted TCP streams. Handshakes run
/// concurrently (a client that never finishes one holds up nobody) and are bounded in time.
pub struct TlsListener {
    sessions: mpsc::Receiver<(TlsStream<CountingStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp`, counting bytes into `traffic`.
    pub(crate) fn new(tcp: TcpListener, traffic: Arc<Traffic>, tls: &Tls) -> std::io::Result<Self> {
        Self::with_handshake(tcp, traffic, tls, HANDSHAKE)
    }

    /// As [`TlsListener::new`], closing connections whose handshake takes longer than `limit`.
    fn with_handshake(
        tcp: TcpListener,
        traffic: Arc<Traffic>,
        tls: &Tls,
        limit: Duration,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let (tx, sessions) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                // A stream's frames go out as they are made, not held for a full packet.
                let _ = stream.set_nodelay(true);
                let stream = CountingStream::new(stream, traffic.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(session)) => {
                            let _ = tx.send((session, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "a TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "a TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            sessions,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<CountingStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.sessions.recv().await {
            Some(session) => session,
            // The accepting task ended (it does not, short of a panic): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::serve::Listener;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Trusts exactly one certificate (as devices do, by its pin).
    #[derive(Debug)]
    struct Exactly(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for Exactly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_slice() {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("another certificate".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.1.signature_verification_algorithms.supported_schemes()
        }
    }

    /// A client that connects and never says a word is closed when its handshake time is up,
    /// and holds up nobody meanwhile: a client connecting after it is served at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_client_is_dropped_and_holds_up_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path()).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let limit = Duration::from_millis(1500);
        let mut listener =
            TlsListener::with_handshake(tcp, Arc::new(Traffic::default()), &tls, limit).unwrap();
        let addr = listener.local_addr().unwrap();

        let started = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = std::fs::read(dir.path().join("tls/cert.der")).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Exactly(cert, provider)))
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("linli-relay").unwrap();
            let mut session = connector.connect(name, tcp).await.unwrap();
            session.write_all(b"ping").await.unwrap();
            session.flush().await.unwrap();
            session
        });
        let (mut served, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the second client is served while the first says nothing");
        let mut got = [0u8; 4];
        served.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert!(
            started.elapsed() < limit,
            "served before the silent client's time was up"
        );
        let _session = client.await.unwrap();

        // The silent client: closed by the relay once its time is up (end of stream).
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("closed within its handshake time")
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing but the end of the stream");
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    }
}
