//! Invitations: the text code that enrols a new device.

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::{Cert, Grant, Membership};
use crate::crypto::{DeviceKey, ScopeKey, SignatureBytes, verify};

const PREFIX: &str = "LINLI2";
/// The prefix of codes made before invitations were signed whole.
const OLD_PREFIX: &str = "LINLI1";
const INVITE_CONTEXT: &[u8] = b"linli invitation v1";

/// An invitation. Its code is a bearer credential (it carries scope keys and a one-time
/// signing key): show it once, as text or a QR code, to the person enrolling the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The community's name, to show before joining.
    pub name: String,
    /// The chain from the root key to this invitation's key, which grants the role and grids.
    pub membership: Membership,
    /// The invitation key's secret: the joining device signs its own certificate with it.
    pub secret: [u8; 32],
    /// The keys of the scopes the role may use.
    pub keys: Vec<(String, ScopeKey)>,
    /// The community's master secret, for staff only.
    pub master: Option<[u8; 32]>,
    /// The relay the community uses, if any.
    pub relay: Option<String>,
    /// The issuing device's signature (the issuer of the membership's last certificate) over
    /// every field above: nothing in a code can be changed, added or left out unnoticed.
    pub signature: SignatureBytes,
}

/// What an invitation's signature covers: every field but the signature, in order.
type Signed<'a> = (
    &'a str,
    &'a Membership,
    &'a [u8; 32],
    &'a [(String, ScopeKey)],
    &'a Option<[u8; 32]>,
    &'a Option<String>,
);

impl Invite {
    /// An invitation signed by `issuer`, the device that issued the membership's last
    /// certificate (the one granting the invitation key).
    pub fn issue(
        issuer: &DeviceKey,
        name: String,
        membership: Membership,
        secret: [u8; 32],
        keys: Vec<(String, ScopeKey)>,
        master: Option<[u8; 32]>,
        relay: Option<String>,
    ) -> Invite {
        let mut invite = Invite {
            name,
            membership,
            secret,
            keys,
            master,
            relay,
            signature: Vec::new(),
        };
        invite.signature = issuer.sign(INVITE_CONTEXT, &invite.signed_bytes());
        invite
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let fields: Signed<'_> = (
            &self.name,
            &self.membership,
            &self.secret,
            &self.keys,
            &self.master,
            &self.relay,
        );
        crate::encode(&fields)
    }

    /// The text code: `LINLI2` and base32 (letters and digits only, so it fits a QR code's
    /// alphanumeric mode).
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&crate::encode(self))
        )
    }

    /// Reads a code; spaces, line breaks and lower case are forgiven.
    pub fn decode(code: &str) -> Result<Invite, WireError> {
        let clean: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        if clean.starts_with(OLD_PREFIX) {
            return Err(WireError::Invite(
                "it was made by an older Linli (before codes were signed whole): ask for a new \
                 one"
                .into(),
            ));
        }
        let body = clean
            .strip_prefix(PREFIX)
            .ok_or_else(|| WireError::Invite(format!("it does not start with {PREFIX}")))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|e| WireError::Invite(format!("not base32 at character {}", e.position)))?;
        // Refuses bytes after the end, too.
        let invite: Invite = crate::decode("invitation", &bytes)
            .map_err(|e| WireError::Invite(format!("incomplete or damaged ({e})")))?;
        let damaged = |what: &str| WireError::Invite(format!("damaged or altered: {what}"));
        // The chain must hold together, be the community's (its id made from its root key),
        // end at the key this code carries, and the whole code be signed by its issuer.
        let issuer = invite
            .membership
            .certs
            .last()
            .map(|c| c.issuer)
            .ok_or_else(|| damaged("it carries no certificate"))?;
        verify(
            &issuer,
            INVITE_CONTEXT,
            &invite.signed_bytes(),
            &invite.signature,
            "invitation",
        )
        .map_err(|_| damaged("its signature does not match its contents"))?;
        invite.membership.verify(&invite.membership.root)?;
        if !crate::community_bound_to(&invite.membership.community, &invite.membership.root) {
            return Err(damaged("its community id is not its root key's"));
        }
        if DeviceKey::from_bytes(&invite.secret).public() != invite.membership.device() {
            return Err(damaged("its key does not match its certificate"));
        }
        for (scope, _) in &invite.keys {
            crate::check_scope(scope)?;
        }
        if invite.name.chars().count() > 100 || invite.name.chars().any(char::is_control) {
            return Err(damaged(
                "its community name is too long or holds control characters",
            ));
        }
        if invite
            .relay
            .as_ref()
            .is_some_and(|r| r.len() > 2048 || !r.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(damaged("its relay address is not a plain address"));
        }
        Ok(invite)
    }

    /// The grant this invitation gives.
    pub fn grant(&self) -> Result<Grant, WireError> {
        self.membership.verify(&self.membership.root)
    }

    /// The membership of a device that joins with this invitation: the invitation's chain plus
    /// a certificate for `device`, signed with the invitation's key.
    pub fn enrol(
        &self,
        device: &DeviceKey,
        label: &str,
        now_ms: i64,
    ) -> Result<Membership, WireError> {
        let mut grant = self.grant()?;
        grant.subject = device.public();
        grant.label = label.to_string();
        grant.issued_ms = now_ms;
        let cert = Cert::issue(&DeviceKey::from_bytes(&self.secret), grant);
        let mut m = self.membership.clone();
        m.certs.push(cert);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use rand::{RngExt, SeedableRng};

    fn invitation(relay: Option<&str>) -> (DeviceKey, Invite) {
        let root = DeviceKey::generate().unwrap();
        let community = crate::community_id("c1", &root.public());
        let invite_key = DeviceKey::generate().unwrap();
        let grant = Grant {
            community: community.clone(),
            subject: invite_key.public(),
            role: Role::Grid,
            grids: vec!["G01".into()],
            label: "invitation".into(),
            issued_ms: 5,
        };
        let invite = Invite::issue(
            &root,
            "幸福社区".into(),
            Membership {
                community,
                root: root.public(),
                certs: vec![Cert::issue(&root, grant)],
            },
            invite_key.to_bytes(),
            vec![
                ("G01".into(), ScopeKey([3; 32])),
                ("*".into(), ScopeKey([4; 32])),
            ],
            None,
            relay.map(str::to_string),
        );
        (root, invite)
    }

    #[test]
    fn an_invitation_round_trips_and_enrols() {
        let (root, invite) = invitation(Some("http://127.0.0.1:9"));
        let code = invite.encode();
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
        let back = Invite::decode(&format!("  {}\n", code.to_lowercase())).unwrap();
        assert_eq!(back, invite);
        let device = DeviceKey::generate().unwrap();
        let m = back.enrol(&device, "tablet", 9).unwrap();
        let g = m.verify(&root.public()).unwrap();
        assert_eq!((g.role, g.subject), (Role::Grid, device.public()));

        assert!(Invite::decode("LINLI2AAAA").is_err());
        let old = Invite::decode("LINLI1AAAA").unwrap_err().to_string();
        assert!(old.contains("older Linli"), "{old}");
        assert!(Invite::decode(&code[..code.len() - 9]).is_err());
        assert!(Invite::decode("hello").is_err());
    }

    /// Every field is covered: a code whose relay, name, keys or master secret were changed
    /// and that was encoded again (a careful forger, not a typo) is refused, and so is a code
    /// with bytes after its end.
    #[test]
    fn no_field_can_be_altered_and_no_bytes_added() {
        let (_, invite) = invitation(Some("http://127.0.0.1:9"));
        let mut alterations: Vec<Invite> = Vec::new();
        let mut a = invite.clone();
        a.relay = Some("http://203.0.113.9:80".into());
        alterations.push(a);
        let mut a = invite.clone();
        a.relay = None;
        alterations.push(a);
        let mut a = invite.clone();
        a.name = "另一个社区".into();
        alterations.push(a);
        let mut a = invite.clone();
        a.keys[0].1 = ScopeKey([9; 32]);
        alterations.push(a);
        let mut a = invite.clone();
        a.keys.pop();
        alterations.push(a);
        let mut a = invite.clone();
        a.master = Some([1; 32]);
        alterations.push(a);
        for a in alterations {
            let e = Invite::decode(&a.encode()).unwrap_err().to_string();
            assert!(e.contains("signature"), "{e}");
        }
        let mut bytes = crate::encode(&invite);
        bytes.push(0);
        let code = format!("{PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&bytes));
        let e = Invite::decode(&code).unwrap_err().to_string();
        assert!(e.contains("follow its end"), "{e}");
    }

    /// 10,000 codes with one character changed, added, removed or two swapped: none is
    /// accepted (changes of case, spaces and dashes are forgiven, so they are not mutations).
    #[test]
    fn no_mutated_code_is_accepted() {
        let (_, invite) = invitation(Some("http://127.0.0.1:9"));
        let code: Vec<char> = invite.encode().chars().collect();
        let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".chars().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
        let mut accepted = Vec::new();
        for _ in 0..10_000 {
            let mut m = code.clone();
            let at = rng.random_range(0..m.len());
            match rng.random_range(0..4) {
                0 => loop {
                    let c = alphabet[rng.random_range(0..alphabet.len())];
                    if c != m[at] {
                        m[at] = c;
                        break;
                    }
                },
                1 => m.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                2 => {
                    m.remove(at);
                }
                _ => {
                    let to = (at + 1) % m.len();
                    if m[at] == m[to] {
                        m[at] = if m[at] == 'A' { 'B' } else { 'A' };
                    } else {
                        m.swap(at, to);
                    }
                }
            }
            let mutated: String = m.into_iter().collect();
            if mutated != invite.encode() && Invite::decode(&mutated).is_ok() {
                accepted.push(mutated);
            }
        }
        assert!(
            accepted.is_empty(),
            "{} mutated codes accepted",
            accepted.len()
        );
    }

    proptest::proptest! {
        /// Any text, and any text that looks like a code, decodes to an answer, never a panic.
        #[test]
        fn decoding_any_text_never_panics(text in ".{0,300}", code in "LINLI2[A-Z2-7]{0,400}") {
            let _ = Invite::decode(&text);
            let _ = Invite::decode(&code);
        }
    }
}
