//! 密钥 The store's key, and who may unlock it.
//!
//! A store is encrypted with one random 256-bit key ([`DbKey`], SQLCipher's raw key: opening a
//! connection derives nothing). The key is kept next to the store, in `store.key`, wrapped once
//! for each person who uses the device: a slot holds the key encrypted (XChaCha20-Poly1305) with
//! a key derived from that person's passphrase by Argon2id (RFC 9106's second recommended
//! setting: 64 MiB, 3 passes, 4 lanes). Signing in is unwrapping one's slot; a wrong passphrase
//! fails authentication and says so. Nothing in the file reveals the key or a passphrase; the
//! file names the people (their user names on this device).
//!
//! A passphrase has at least [`MIN_PASSPHRASE`] characters: it alone protects the key when no
//! keystore does.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
pub use linli_sqlite::DbKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::StoreError;

/// The key file's name, next to the store.
pub const KEY_FILE: &str = "store.key";

/// The fewest characters a passphrase may have.
pub const MIN_PASSPHRASE: usize = 10;

/// Argon2id's memory (KiB), passes and lanes for a new slot (RFC 9106, second recommended
/// option; the first, 2 GiB, does not fit a tablet).
const ARGON2: (u32, u32, u32) = (64 * 1024, 3, 4);

/// What a key is wrapped with, bound to the slot (a slot moved to another name fails).
const CONTEXT: &str = "linli store key v1";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slot {
    /// The person (their user name on this device).
    person: String,
    /// Argon2id memory in KiB.
    m_kib: u32,
    /// Argon2id passes.
    t: u32,
    /// Argon2id lanes.
    p: u32,
    /// Salt, hex (16 bytes).
    salt: String,
    /// Nonce, hex (24 bytes).
    nonce: String,
    /// The wrapped key with its tag, hex (48 bytes).
    wrapped: String,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: dir.join(KEY_FILE),
        source,
    }
}

fn damaged(why: impl Into<String>) -> StoreError {
    StoreError::KeyFile(why.into())
}

/// Whether `dir` has a key file (a store made by this version of Linli, or migrated).
pub fn exists(dir: &Path) -> bool {
    dir.join(KEY_FILE).exists()
}

/// The people who may unlock the store in `dir`.
pub fn people(dir: &Path) -> Result<Vec<String>, StoreError> {
    Ok(read(dir)?.slots.into_iter().map(|s| s.person).collect())
}

/// Checks a new passphrase: long enough, and not only spaces.
pub fn check_passphrase(passphrase: &str) -> Result<(), StoreError> {
    if passphrase.trim().chars().count() < MIN_PASSPHRASE {
        return Err(StoreError::Passphrase(format!(
            "must have at least {MIN_PASSPHRASE} characters"
        )));
    }
    Ok(())
}

/// Makes the key of a new store in `dir` (or of a plain one about to be encrypted) and its
/// first slot, for `person`. Fails if `dir` has a key file already.
///
/// Never replaces a key file (two first starts at once: one wins, the other is told), and
/// refuses when an encrypted store is there without its key file (a new key would not open
/// it: the key file is to be restored).
pub fn create(dir: &Path, person: &str, passphrase: &str) -> Result<DbKey, StoreError> {
    check_passphrase(passphrase)?;
    if exists(dir) {
        return Err(damaged("a key file exists already"));
    }
    if key_missing(dir)? {
        return Err(StoreError::KeyFile(format!(
            "{} is encrypted and its key file {KEY_FILE} is missing: restore {KEY_FILE} from \
             where it was copied (a new passphrase cannot open it)",
            dir.join(crate::store::DB_FILE).display()
        )));
    }
    linli_sqlite::private_dir(dir, KEY_FILE).map_err(io(dir))?;
    let key = DbKey::random().map_err(io(dir))?;
    let slot = wrap(&key, person, passphrase)?;
    let file = KeyFile {
        version: 1,
        slots: vec![slot],
    };
    let tmp = write_tmp(dir, &file)?;
    // A hard link fails if the name exists: the first key written stays the store's.
    let linked = std::fs::hard_link(&tmp, dir.join(KEY_FILE));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(damaged(
            "a key file was made meanwhile: sign in with its passphrase",
        )),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Whether `dir` holds an encrypted store without its key file.
pub fn key_missing(dir: &Path) -> Result<bool, StoreError> {
    let db = dir.join(crate::store::DB_FILE);
    let len = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    Ok(!exists(dir) && len > 0 && !linli_sqlite::is_plain(&db).map_err(io(dir))?)
}

/// Adds `person` (or replaces their passphrase) with the unlocked `key`.
pub fn enrol(dir: &Path, key: &DbKey, person: &str, passphrase: &str) -> Result<(), StoreError> {
    check_passphrase(passphrase)?;
    let mut file = read(dir)?;
    let slot = wrap(key, person, passphrase)?;
    file.slots.retain(|s| s.person != person);
    file.slots.push(slot);
    write(dir, &file)
}

/// Unlocks the store in `dir` with `passphrase`: `person`'s slot, or (none named) the first
/// slot it opens. Returns the key and the person.
pub fn unlock(
    dir: &Path,
    person: Option<&str>,
    passphrase: &str,
) -> Result<(DbKey, String), StoreError> {
    let file = read(dir)?;
    let mut tried = false;
    for slot in &file.slots {
        if person.is_some_and(|p| p != slot.person) {
            continue;
        }
        tried = true;
        if let Some(key) = unwrap(slot, passphrase)? {
            return Ok((key, slot.person.clone()));
        }
    }
    if !tried {
        return Err(StoreError::WrongPassphrase(format!(
            "{} has no passphrase on this device",
            person.unwrap_or("nobody")
        )));
    }
    Err(StoreError::WrongPassphrase(
        "the passphrase is wrong".to_string(),
    ))
}

fn read(dir: &Path) -> Result<KeyFile, StoreError> {
    let text = std::fs::read_to_string(dir.join(KEY_FILE)).map_err(io(dir))?;
    parse_file(&text)
}

/// Reads a key file's text (outside input: a damaged or foreign file is an error, never a
/// panic).
pub fn parse(text: &str) -> Result<(), StoreError> {
    parse_file(text).map(|_| ())
}

fn parse_file(text: &str) -> Result<KeyFile, StoreError> {
    // serde's message may quote what it read (a field name, a value): only where is said.
    let file: KeyFile = serde_json::from_str(text).map_err(|e| {
        damaged(format!(
            "{KEY_FILE} cannot be read: not a key file of this form (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if file.version != 1 {
        return Err(damaged(format!(
            "{KEY_FILE} is of version {}: a newer Linli made it",
            file.version
        )));
    }
    if file.slots.is_empty() {
        return Err(damaged(format!("{KEY_FILE} has nobody who may unlock it")));
    }
    for slot in &file.slots {
        check_slot(slot)?;
    }
    Ok(file)
}

fn write(dir: &Path, file: &KeyFile) -> Result<(), StoreError> {
    // Written next to it and renamed over it: a killed process leaves the old file or the new
    // one, never half of one.
    let tmp = write_tmp(dir, file)?;
    std::fs::rename(&tmp, dir.join(KEY_FILE)).map_err(io(dir))?;
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Writes `file` to a temporary file of its own next to the key file (its name unique to
/// this process and call), durably.
fn write_tmp(dir: &Path, file: &KeyFile) -> Result<std::path::PathBuf, StoreError> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(file).map_err(|e| damaged(e.to_string()))?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| damaged(e.to_string()))?;
    let tmp = dir.join(format!(
        "{KEY_FILE}.{}-{}.new",
        std::process::id(),
        hex(&tag)
    ));
    let mut f = linli_sqlite::private_file(&tmp).map_err(io(dir))?;
    f.write_all(text.as_bytes()).map_err(io(dir))?;
    f.sync_all().map_err(io(dir))?;
    Ok(tmp)
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    (m, t, p): (u32, u32, u32),
) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| damaged(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| damaged(format!("Argon2: {e}")))?;
    Ok(out)
}

fn wrap(key: &DbKey, person: &str, passphrase: &str) -> Result<Slot, StoreError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).map_err(|e| damaged(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| damaged(e.to_string()))?;
    let kek = derive(passphrase, &salt, ARGON2)?;
    let cipher = XChaCha20Poly1305::new(&(*kek).into());
    let aad = format!("{CONTEXT}\n{person}");
    let wrapped = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: key.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| damaged("cannot wrap the key"))?;
    let (m_kib, t, p) = ARGON2;
    Ok(Slot {
        person: person.to_string(),
        m_kib,
        t,
        p,
        salt: hex(&salt),
        nonce: hex(&nonce),
        wrapped: hex(&wrapped),
    })
}

/// A slot's fields, decoded: salt, nonce, wrapped key.
type SlotBytes = (Vec<u8>, [u8; 24], Vec<u8>);

/// Decodes and bounds a slot's fields. Errors name the field, never a value.
fn check_slot(slot: &Slot) -> Result<SlotBytes, StoreError> {
    let bytes = |name: &str, hex_text: &str, len: usize| {
        unhex(hex_text)
            .filter(|b| b.len() == len)
            .ok_or_else(|| damaged(format!("{KEY_FILE}: the {name} of a slot is damaged")))
    };
    let salt = bytes("salt", &slot.salt, 16)?;
    let nonce: [u8; 24] = bytes("nonce", &slot.nonce, 24)?
        .try_into()
        .map_err(|_| damaged("the nonce is not 24 bytes"))?;
    let wrapped = bytes("key", &slot.wrapped, 48)?;
    // Bounds on what a file may ask for: 8 MiB to 256 MiB, 1 to 10 passes, 1 to 16 lanes (a
    // damaged or hostile file must not exhaust the device, nor make the wrapping weak).
    if !(8 * 1024..=256 * 1024).contains(&slot.m_kib)
        || !(1..=10).contains(&slot.t)
        || !(1..=16).contains(&slot.p)
        || slot.person.trim().is_empty()
        || slot.person.chars().count() > 64
    {
        return Err(damaged(format!(
            "{KEY_FILE}: a slot's person or Argon2 parameters are out of bounds"
        )));
    }
    Ok((salt, nonce, wrapped))
}

/// The key in `slot`, or none if `passphrase` is not its.
fn unwrap(slot: &Slot, passphrase: &str) -> Result<Option<DbKey>, StoreError> {
    let (salt, nonce, wrapped) = check_slot(slot)?;
    let kek = derive(passphrase, &salt, (slot.m_kib, slot.t, slot.p))?;
    let cipher = XChaCha20Poly1305::new(&(*kek).into());
    let aad = format!("{CONTEXT}\n{}", slot.person);
    match cipher.decrypt(
        &XNonce::from(nonce),
        Payload {
            msg: &wrapped,
            aad: aad.as_bytes(),
        },
    ) {
        Ok(plain) => {
            let plain = Zeroizing::new(plain);
            let key: [u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| damaged("the unwrapped key is not 32 bytes"))?;
            Ok(Some(DbKey::from_bytes(key)))
        }
        Err(_) => Ok(None),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_slot_opens_with_its_passphrase_only_and_names_its_person() {
        let dir = tempfile::tempdir().unwrap();
        let key = create(dir.path(), "王芳", "correct horse battery").unwrap();
        let (again, who) = unlock(dir.path(), None, "correct horse battery").unwrap();
        assert_eq!((again.as_bytes(), who.as_str()), (key.as_bytes(), "王芳"));
        let err = unlock(dir.path(), None, "wrong horse battery").unwrap_err();
        assert!(matches!(err, StoreError::WrongPassphrase(_)), "{err}");
        assert!(err.to_string().contains("wrong"), "{err}");
        // A second person, with their own passphrase.
        enrol(dir.path(), &key, "李明", "another passphrase").unwrap();
        let (k2, who) = unlock(dir.path(), Some("李明"), "another passphrase").unwrap();
        assert_eq!((k2.as_bytes(), who.as_str()), (key.as_bytes(), "李明"));
        assert!(unlock(dir.path(), Some("李明"), "correct horse battery").is_err());
        assert_eq!(people(dir.path()).unwrap(), ["王芳", "李明"]);
        // The file shows neither the key nor a passphrase.
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(!text.contains(&hex(key.as_bytes())));
        assert!(!text.contains("correct horse"));
        // Too short a passphrase is refused before anything is written.
        let other = tempfile::tempdir().unwrap();
        let err = create(other.path(), "王芳", "123456").unwrap_err();
        assert!(err.to_string().contains("at least 10"), "{err}");
        assert!(!exists(other.path()));
    }

    #[test]
    fn an_encrypted_store_without_its_key_file_is_never_given_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = create(dir.path(), "王芳", "correct horse battery").unwrap();
        drop(crate::Store::open(dir.path(), &key).unwrap());
        // A second first start (a double click, two processes) does not replace the key.
        let err = create(dir.path(), "王芳", "another passphrase!").unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        assert_eq!(
            unlock(dir.path(), None, "correct horse battery")
                .unwrap()
                .0
                .as_bytes(),
            key.as_bytes()
        );
        // The key file lost: the store says so instead of taking a new key.
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(key_missing(dir.path()).unwrap());
        let err = create(dir.path(), "王芳", "another passphrase!").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(!exists(dir.path()));
    }

    #[test]
    fn a_damaged_key_file_is_an_error_that_says_so() {
        for text in [
            "",
            "{}",
            r#"{"version":2,"slots":[]}"#,
            r#"{"version":1,"slots":[]}"#,
            r#"{"version":1,"slots":[{"person":"x"}]}"#,
            r#"{"version":1,"slots":[{"person":"x","m_kib":8,"t":1,"p":1,"salt":"zz","nonce":"","wrapped":""}]}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(KEY_FILE),
            r#"{"version":1,"slots":[{"person":"x","m_kib":8,"t":1,"p":1,"salt":"zz","nonce":"","wrapped":""}]}"#,
        )
        .unwrap();
        let err = unlock(dir.path(), None, "whatever passphrase").unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
