//! HTTPS for the relay with a certificate of its own, made on first start and kept in the data
//! directory (`tls/cert.der`, `tls/key.der`, the key readable by its owner only). Devices trust
//! it by its pin, the SHA-256 of the certificate, given after `#sha256=` in the relay's address
//! (the relay prints the whole address; invitations carry it), so no certificate authority and
//! no domain name are needed on a street office's network.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::RelayError;

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
        linli_sqlite::private_dir_always(&dir).map_err(|e| io_err(&dir, e))?;
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
