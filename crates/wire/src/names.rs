//! The names that travel in clear between devices and the relay: community ids, scope names
//! and document ids. Each has a closed alphabet and a length limit, so that none can carry a
//! line break into a log, a terminal escape into a screen, or a resident's name to the relay.
//!
//! A community id is bound to the community's root key: it ends with a tag derived from that
//! key ([`community_id`]), so whoever first shows a relay a community id must hold the key it
//! was made from. Nobody can register another community's id first and lock it out.

use sha2::{Digest, Sha256};

use crate::crypto::PublicKey;
use crate::{COMMUNITY_WIDE, WireError};

/// The longest community id.
pub const MAX_COMMUNITY_ID: usize = 64;
/// The longest label of a community id (the part before its key tag).
pub const MAX_COMMUNITY_LABEL: usize = 40;
/// The longest scope name (a grid id).
pub const MAX_SCOPE: usize = 32;
/// The longest document id.
pub const MAX_DOC_ID: usize = 128;

/// Whether `c` may appear in an id: ASCII letters, digits, `-`, `_` and `.`.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The tag of a root key: lower-case base32 of the first 80 bits of its SHA-256.
fn key_tag(root: &PublicKey) -> String {
    let mut h = Sha256::new();
    h.update(b"linli community id v1\0");
    h.update(root);
    data_encoding::BASE32_NOPAD
        .encode(&h.finalize()[..10])
        .to_ascii_lowercase()
}

/// The id of a community whose root key is `root`: `label-` and a tag derived from the key
/// (`demo7-k3q4…`). `label` is cut to the id alphabet; an empty one becomes `c`.
pub fn community_id(label: &str, root: &PublicKey) -> String {
    let mut label: String = label
        .chars()
        .filter(|c| id_char(*c))
        .take(MAX_COMMUNITY_LABEL)
        .collect();
    if label.is_empty() {
        label.push('c');
    }
    format!("{label}-{}", key_tag(root))
}

/// Whether community id `id` was made from root key `root` by [`community_id`].
pub fn community_bound_to(id: &str, root: &PublicKey) -> bool {
    id.rsplit_once('-')
        .is_some_and(|(label, tag)| !label.is_empty() && tag == key_tag(root))
}

/// Checks a community id's form: 1 to 64 characters of `A-Z a-z 0-9 - _ .`. The message
/// never repeats the id (it may be anything a stranger sent).
pub fn check_community_id(id: &str) -> Result<(), WireError> {
    check_name("community id", id, MAX_COMMUNITY_ID)
}

/// Checks a scope name: `*` (community-wide) or a grid id of 1 to 32 id characters.
pub fn check_scope(scope: &str) -> Result<(), WireError> {
    if scope == COMMUNITY_WIDE {
        return Ok(());
    }
    check_name("scope", scope, MAX_SCOPE)
}

/// Checks a document id: 1 to 128 id characters.
pub fn check_doc_id(id: &str) -> Result<(), WireError> {
    check_name("document id", id, MAX_DOC_ID)
}

fn check_name(what: &'static str, s: &str, max: usize) -> Result<(), WireError> {
    if s.is_empty() {
        return Err(WireError::Name {
            what,
            reason: "is empty".into(),
        });
    }
    if s.len() > max {
        return Err(WireError::Name {
            what,
            reason: format!("is longer than {max} characters"),
        });
    }
    if !s.chars().all(id_char) {
        return Err(WireError::Name {
            what,
            reason: "may hold only ASCII letters, digits, '-', '_' and '.'".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKey;
    use proptest::prelude::*;

    #[test]
    fn a_community_id_is_bound_to_its_root_key() {
        let root = DeviceKey::generate().unwrap().public();
        let other = DeviceKey::generate().unwrap().public();
        let id = community_id("4401060010001", &root);
        assert!(id.starts_with("4401060010001-"), "{id}");
        assert_eq!(id.len(), "4401060010001-".len() + 16, "80 bits of tag");
        assert!(community_bound_to(&id, &root));
        assert!(!community_bound_to(&id, &other));
        assert!(!community_bound_to("4401060010001", &root));
        assert!(!community_bound_to(&id[1..], &other));
        check_community_id(&id).unwrap();
        // Labels are cut to the alphabet; an empty one still makes an id.
        assert!(community_id("幸福 社区\n", &root).starts_with("c-"));
        assert!(community_id("demo7", &root).starts_with("demo7-"));
    }

    #[test]
    fn names_are_refused_by_form_without_repeating_them() {
        for bad in ["", "a\nb", "\u{1b}[31m", "a b", "社区", &"x".repeat(65)] {
            let e = check_community_id(bad).unwrap_err().to_string();
            assert!(!bad.is_empty() && !e.contains(bad) || bad.is_empty(), "{e}");
        }
        check_scope("*").unwrap();
        check_scope("G01").unwrap();
        assert!(check_scope("**").is_err());
        assert!(check_scope("G 1").is_err());
        check_doc_id("hh-000123.pii").unwrap();
        assert!(check_doc_id("hh/1").is_err());
        assert!(check_doc_id(&"h".repeat(129)).is_err());
    }

    proptest! {
        #[test]
        fn any_label_makes_a_valid_bound_id(label in any::<String>(), seed in any::<[u8; 32]>()) {
            let root = DeviceKey::from_bytes(&seed).public();
            let id = community_id(&label, &root);
            prop_assert!(check_community_id(&id).is_ok());
            prop_assert!(community_bound_to(&id, &root));
        }

        #[test]
        fn checking_any_text_never_panics(s in any::<String>()) {
            let _ = check_community_id(&s);
            let _ = check_scope(&s);
            let _ = check_doc_id(&s);
            let _ = community_bound_to(&s, &[0; 32]);
        }
    }
}
