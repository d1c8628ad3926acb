//! Keys, signatures and sealing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::WireError;

/// An ed25519 public key: a device's identity (the same key is its iroh node id).
pub type PublicKey = [u8; 32];
/// An ed25519 signature.
pub type SignatureBytes = Vec<u8>;

/// Fills a fresh array from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], WireError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| WireError::Random(e.to_string()))?;
    Ok(out)
}

/// A device's secret key. Never leaves the device, never printed.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", hex(&self.public()))
    }
}

impl DeviceKey {
    /// A new random key.
    pub fn generate() -> Result<DeviceKey, WireError> {
        Ok(DeviceKey::from_bytes(&random_bytes()?))
    }

    /// The key from its 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32]) -> DeviceKey {
        DeviceKey(SigningKey::from_bytes(secret))
    }

    /// The 32 secret bytes (for the device's own store only).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `message` in the domain `context` (so a signature made for one purpose is never
    /// valid for another).
    pub fn sign(&self, context: &[u8], message: &[u8]) -> SignatureBytes {
        self.0
            .sign(&domain_message(context, message))
            .to_bytes()
            .to_vec()
    }
}

fn domain_message(context: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 1 + message.len());
    m.extend_from_slice(context);
    m.push(0);
    m.extend_from_slice(message);
    m
}

/// Checks a signature made with [`DeviceKey::sign`]; `what` names the signed thing in errors.
pub fn verify(
    key: &PublicKey,
    context: &[u8],
    message: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), WireError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| WireError::BadSignature(what))?;
    let sig = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|_| WireError::BadSignature(what))?;
    key.verify_strict(&domain_message(context, message), &sig)
        .map_err(|_| WireError::BadSignature(what))
}

/// Lower-case hex, for ids in messages and logs.
pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// The symmetric key of one scope (a grid, or the community-wide scope).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeKey(pub [u8; 32]);

impl std::fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScopeKey(..)")
    }
}

impl ScopeKey {
    /// The key of `scope`, derived from the community's master secret (HKDF-SHA256). Staff
    /// hold the master secret; a grid worker's device holds only the derived keys of its
    /// scopes, and cannot derive any other.
    pub fn derive(master: &[u8; 32], community: &str, scope: &str) -> ScopeKey {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"linli scope key v1"), master);
        let mut out = [0u8; 32];
        let info = [community.as_bytes(), b"\0", scope.as_bytes()].concat();
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(&info, &mut out);
        ScopeKey(out)
    }
}

const NONCE: usize = 24;

fn aad(community: &str, scope: &str) -> Vec<u8> {
    [
        b"linli sealed v1\0",
        community.as_bytes(),
        b"\0",
        scope.as_bytes(),
    ]
    .concat()
}

/// Encrypts `plaintext` for `scope` of `community`: a random 24-byte nonce, then the
/// XChaCha20-Poly1305 ciphertext. The community and scope are authenticated, so sealed bytes
/// moved to another scope do not open.
pub fn seal(
    key: &ScopeKey,
    community: &str,
    scope: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, WireError> {
    let nonce: [u8; NONCE] = random_bytes()?;
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let aad = aad(community, scope);
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| WireError::Sealed {
            scope: scope.to_string(),
        })?;
    let mut out = Vec::with_capacity(NONCE + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts what [`seal`] made; fails if anything was changed.
pub fn open(
    key: &ScopeKey,
    community: &str,
    scope: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, WireError> {
    let err = || WireError::Sealed {
        scope: scope.to_string(),
    };
    if sealed.len() < NONCE {
        return Err(err());
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| err())?;
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let aad = aad(community, scope);
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| err())
}

/// One document inside a bundle: Automerge bytes (a snapshot or changes) and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocPayload {
    /// Document id.
    pub id: String,
    /// Collection code (`households`, …).
    pub collection: String,
    /// Automerge bytes: a whole document or changes, as `load_incremental` takes them.
    #[serde(with = "crate::bytes")]
    pub bytes: Vec<u8>,
}

/// What travels sealed: documents of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The documents.
    pub docs: Vec<DocPayload>,
}

/// zstd level for bundles: documents of one scope compress well together.
const BUNDLE_LEVEL: i32 = 9;
/// The largest bundle we agree to decompress.
const MAX_BUNDLE: usize = 512 * 1024 * 1024;

/// Compresses and seals a bundle for `scope`.
pub fn seal_bundle(
    key: &ScopeKey,
    community: &str,
    scope: &str,
    bundle: &Bundle,
) -> Result<Vec<u8>, WireError> {
    let plain = crate::encode(bundle);
    let packed = zstd::bulk::compress(&plain, BUNDLE_LEVEL).map_err(|e| WireError::Malformed {
        what: "bundle",
        reason: e.to_string(),
    })?;
    seal(key, community, scope, &packed)
}

/// Opens and decompresses a sealed bundle.
pub fn open_bundle(
    key: &ScopeKey,
    community: &str,
    scope: &str,
    sealed: &[u8],
) -> Result<Bundle, WireError> {
    let packed = open(key, community, scope, sealed)?;
    let plain = zstd::bulk::decompress(&packed, MAX_BUNDLE).map_err(|e| WireError::Malformed {
        what: "bundle",
        reason: e.to_string(),
    })?;
    crate::decode("bundle", &plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_scope() {
        let master = [7u8; 32];
        let k1 = ScopeKey::derive(&master, "c1", "G01");
        let k2 = ScopeKey::derive(&master, "c1", "G02");
        assert_ne!(k1, k2);
        let sealed = seal(&k1, "c1", "G01", "王芳 320106195012107827".as_bytes()).unwrap();
        assert!(!sealed.windows(6).any(|w| w == "王芳".as_bytes()));
        assert_eq!(
            open(&k1, "c1", "G01", &sealed).unwrap(),
            "王芳 320106195012107827".as_bytes()
        );
        assert!(open(&k2, "c1", "G01", &sealed).is_err());
        assert!(open(&k1, "c1", "G02", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(open(&k1, "c1", "G01", &flipped).is_err());
        assert!(open(&k1, "c1", "G01", &sealed[..10]).is_err());
    }

    #[test]
    fn signatures_are_bound_to_their_context() {
        let key = DeviceKey::generate().unwrap();
        let sig = key.sign(b"a", b"message");
        assert!(verify(&key.public(), b"a", b"message", &sig, "test").is_ok());
        assert!(verify(&key.public(), b"b", b"message", &sig, "test").is_err());
        assert!(verify(&key.public(), b"a", b"messagE", &sig, "test").is_err());
    }

    #[test]
    fn bundles_round_trip() {
        let key = ScopeKey([1; 32]);
        let b = Bundle {
            docs: vec![DocPayload {
                id: "hh-1".into(),
                collection: "households".into(),
                bytes: vec![1, 2, 3],
            }],
        };
        let sealed = seal_bundle(&key, "c", "G01", &b).unwrap();
        assert_eq!(open_bundle(&key, "c", "G01", &sealed).unwrap(), b);
    }
}
