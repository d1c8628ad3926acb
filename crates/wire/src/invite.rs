//! Invitations: the text code that enrols a new device.

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::{Cert, Grant, Membership};
use crate::crypto::{DeviceKey, ScopeKey};

const PREFIX: &str = "LINLI1";

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
}

impl Invite {
    /// The text code: `LINLI1` and base32 (letters and digits only, so it fits a QR code's
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
        let body = clean
            .strip_prefix(PREFIX)
            .ok_or_else(|| WireError::Invite(format!("it does not start with {PREFIX}")))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|e| WireError::Invite(format!("not base32 at character {}", e.position)))?;
        let invite: Invite = crate::decode("invitation", &bytes)
            .map_err(|e| WireError::Invite(format!("incomplete or damaged ({e})")))?;
        // The chain must hold together, and end at the key this code carries.
        invite.membership.verify(&invite.membership.root)?;
        if DeviceKey::from_bytes(&invite.secret).public() != invite.membership.device() {
            return Err(WireError::Invite(
                "its key does not match its certificate".into(),
            ));
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

    #[test]
    fn an_invitation_round_trips_and_enrols() {
        let root = DeviceKey::generate().unwrap();
        let invite_key = DeviceKey::generate().unwrap();
        let grant = Grant {
            community: "c1".into(),
            subject: invite_key.public(),
            role: Role::Grid,
            grids: vec!["G01".into()],
            label: "invitation".into(),
            issued_ms: 5,
        };
        let invite = Invite {
            name: "幸福社区".into(),
            membership: Membership {
                community: "c1".into(),
                root: root.public(),
                certs: vec![Cert::issue(&root, grant)],
            },
            secret: invite_key.to_bytes(),
            keys: vec![("G01".into(), ScopeKey([3; 32]))],
            master: None,
            relay: Some("http://127.0.0.1:9".into()),
        };
        let code = invite.encode();
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
        let back = Invite::decode(&format!("  {}\n", code.to_lowercase())).unwrap();
        assert_eq!(back, invite);
        let device = DeviceKey::generate().unwrap();
        let m = back.enrol(&device, "tablet", 9).unwrap();
        let g = m.verify(&root.public()).unwrap();
        assert_eq!((g.role, g.subject), (Role::Grid, device.public()));

        assert!(Invite::decode("LINLI1AAAA").is_err());
        assert!(Invite::decode(&code[..code.len() - 9]).is_err());
        assert!(Invite::decode("hello").is_err());
    }
}
