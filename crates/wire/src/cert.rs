//! Certificates and membership chains.

use serde::{Deserialize, Serialize};

use crate::crypto::{DeviceKey, PublicKey, SignatureBytes, hex, verify};
use crate::{COMMUNITY_WIDE, WireError};

/// What a device may do in its community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// 社区工作人员 committee staff: every scope, may invite.
    Staff,
    /// 网格员 grid worker: its grids and the community-wide scope.
    Grid,
    /// 业委会成员 owners' committee member: the community-wide scope.
    Owners,
}

impl Role {
    /// The code used on the command line: `staff`, `grid`, `owners`.
    pub fn code(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Grid => "grid",
            Role::Owners => "owners",
        }
    }

    /// Parses [`Role::code`].
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "staff" => Some(Role::Staff),
            "grid" => Some(Role::Grid),
            "owners" => Some(Role::Owners),
            _ => None,
        }
    }
}

/// What an issuer grants a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Community id.
    pub community: String,
    /// The key granted.
    pub subject: PublicKey,
    /// Its role.
    pub role: Role,
    /// For [`Role::Grid`]: its grids.
    pub grids: Vec<String>,
    /// The device's name as the issuer knew it (for people reading the member list).
    pub label: String,
    /// When it was issued (ms since the Unix epoch).
    pub issued_ms: i64,
}

impl Grant {
    /// Whether this grant lets its holder read and write `scope`.
    pub fn may_use(&self, scope: &str) -> bool {
        match self.role {
            Role::Staff => true,
            Role::Grid => scope == COMMUNITY_WIDE || self.grids.iter().any(|g| g == scope),
            Role::Owners => scope == COMMUNITY_WIDE,
        }
    }

    /// Whether `other` asks for no more than this grant has.
    fn covers(&self, other: &Grant) -> bool {
        match (self.role, other.role) {
            (Role::Staff, _) => true,
            (Role::Grid, Role::Grid) => other.grids.iter().all(|g| self.grids.contains(g)),
            (Role::Owners, Role::Owners) => true,
            _ => false,
        }
    }

    /// The grant in words, for messages: `a grid worker for G01, G02`.
    pub fn describe(&self) -> String {
        match self.role {
            Role::Staff => "committee staff".into(),
            Role::Grid => format!("a grid worker for {}", self.grids.join(", ")),
            Role::Owners => "an owners' committee member".into(),
        }
    }

    /// The grant of the community's root key (the device that created the community).
    pub fn root(community: &str, root: PublicKey) -> Grant {
        Grant {
            community: community.to_string(),
            subject: root,
            role: Role::Staff,
            grids: Vec::new(),
            label: "root".into(),
            issued_ms: 0,
        }
    }
}

const CERT_CONTEXT: &[u8] = b"linli cert v1";

/// A grant signed by its issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// What is granted.
    pub grant: Grant,
    /// Who grants it.
    pub issuer: PublicKey,
    /// The issuer's signature over the grant.
    pub signature: SignatureBytes,
}

impl Cert {
    /// Signs `grant` with `issuer`.
    pub fn issue(issuer: &DeviceKey, grant: Grant) -> Cert {
        let signature = issuer.sign(CERT_CONTEXT, &crate::encode(&grant));
        Cert {
            grant,
            issuer: issuer.public(),
            signature,
        }
    }
}

/// A device's membership: certificates from the community's root key down to the device.
/// The root device itself has no certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Community id.
    pub community: String,
    /// The community's root key (the key of the device that created it).
    pub root: PublicKey,
    /// root → … → device.
    pub certs: Vec<Cert>,
}

impl Membership {
    /// The device this membership belongs to.
    pub fn device(&self) -> PublicKey {
        self.certs.last().map_or(self.root, |c| c.grant.subject)
    }

    /// Checks every signature and that each grant is within its issuer's, and returns the
    /// device's grant. `root` is the root key the checker already trusts for this community.
    pub fn verify(&self, root: &PublicKey) -> Result<Grant, WireError> {
        if &self.root != root {
            return Err(WireError::Chain(format!(
                "it starts at key {}, not at the community's root key",
                short(&self.root)
            )));
        }
        let mut current = Grant::root(&self.community, self.root);
        for (i, cert) in self.certs.iter().enumerate() {
            if cert.issuer != current.subject {
                return Err(WireError::Chain(format!(
                    "certificate {i} is issued by {}, not by the key before it",
                    short(&cert.issuer)
                )));
            }
            verify(
                &cert.issuer,
                CERT_CONTEXT,
                &crate::encode(&cert.grant),
                &cert.signature,
                "membership certificate",
            )?;
            if cert.grant.community != self.community {
                return Err(WireError::Chain(format!(
                    "certificate {i} is for community {}",
                    cert.grant.community
                )));
            }
            if !current.covers(&cert.grant) {
                return Err(WireError::Chain(format!(
                    "certificate {i} grants more than its issuer holds"
                )));
            }
            current = cert.grant.clone();
        }
        Ok(current)
    }
}

/// The first 8 hex digits of a key, for messages.
pub fn short(key: &PublicKey) -> String {
    hex(&key[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(community: &str, key: &DeviceKey, role: Role, grids: &[&str]) -> Grant {
        Grant {
            community: community.into(),
            subject: key.public(),
            role,
            grids: grids.iter().map(|g| g.to_string()).collect(),
            label: "t".into(),
            issued_ms: 1,
        }
    }

    #[test]
    fn a_chain_verifies_and_narrows() {
        let root = DeviceKey::generate().unwrap();
        let staff = DeviceKey::generate().unwrap();
        let worker = DeviceKey::generate().unwrap();
        let m = Membership {
            community: "c1".into(),
            root: root.public(),
            certs: vec![
                Cert::issue(&root, grant("c1", &staff, Role::Staff, &[])),
                Cert::issue(&staff, grant("c1", &worker, Role::Grid, &["G01", "G02"])),
            ],
        };
        let g = m.verify(&root.public()).unwrap();
        assert_eq!(g.role, Role::Grid);
        assert!(g.may_use("G01") && g.may_use(COMMUNITY_WIDE) && !g.may_use("G03"));
        assert_eq!(m.device(), worker.public());

        // Another root, a forged grant, a widened grant, another community: all refused.
        let other = DeviceKey::generate().unwrap();
        assert!(m.verify(&other.public()).is_err());
        let mut forged = m.clone();
        forged.certs[1].grant.grids.push("G03".into());
        assert!(matches!(
            forged.verify(&root.public()),
            Err(WireError::BadSignature(_))
        ));
        let mut wider = m.clone();
        let w2 = DeviceKey::generate().unwrap();
        wider.certs.push(Cert::issue(
            &worker,
            grant("c1", &w2, Role::Grid, &["G01", "G03"]),
        ));
        assert!(matches!(
            wider.verify(&root.public()),
            Err(WireError::Chain(_))
        ));
        let mut elsewhere = m.clone();
        elsewhere.certs[1] = Cert::issue(&staff, grant("c2", &worker, Role::Grid, &["G01"]));
        assert!(elsewhere.verify(&root.public()).is_err());
    }
}
