//! This device's identity in its community: its key, its membership chain, the keys of its
//! scopes; invitations and joining.

use linli_wire::{
    COMMUNITY_WIDE, Cert, DeviceKey, Grant, Invite, Membership, Role, ScopeKey, random_bytes,
};
use rusqlite::{OptionalExtension, params};

use crate::store::{get_meta, set_meta};
use crate::{Store, StoreError};

/// Who this device is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its secret key (also its iroh key).
    pub key: DeviceKey,
    /// Its chain from the community's root.
    pub membership: Membership,
    /// What it may do.
    pub grant: Grant,
}

fn secret(store: &Store, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(store
        .conn()
        .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

fn set_secret(store: &Store, name: &str, value: &[u8]) -> Result<(), StoreError> {
    store.conn().execute(
        "INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)",
        params![name, value],
    )?;
    Ok(())
}

fn key32(name: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Field {
        id: "secrets".into(),
        field: name.into(),
        message: "is not 32 bytes".into(),
    })
}

impl Store {
    /// This device's key, made on first use.
    pub fn device_key(&self) -> Result<DeviceKey, StoreError> {
        match secret(self, "device_key")? {
            Some(bytes) => Ok(DeviceKey::from_bytes(&key32("device_key", bytes)?)),
            None => {
                let key = DeviceKey::generate()?;
                set_secret(self, "device_key", &key.to_bytes())?;
                Ok(key)
            }
        }
    }

    /// This device's identity. A store that created its community (and has no membership
    /// yet) becomes the community's root: staff, every scope, the master secret.
    pub fn identity(&self) -> Result<Identity, StoreError> {
        let key = self.device_key()?;
        let membership: Membership = match secret(self, "membership")? {
            Some(bytes) => linli_wire::decode("stored membership", &bytes)?,
            None => {
                let community = self.community_id()?.ok_or(StoreError::NoCommunity)?;
                let m = Membership {
                    community,
                    root: key.public(),
                    certs: Vec::new(),
                };
                if secret(self, "master")?.is_none() {
                    let master: [u8; 32] = random_bytes()?;
                    set_secret(self, "master", &master)?;
                }
                set_secret(self, "membership", &linli_wire::encode(&m))?;
                m
            }
        };
        let grant = membership.verify(&membership.root)?;
        if grant.subject != key.public() {
            return Err(StoreError::Identity(
                "the stored membership belongs to another device key".into(),
            ));
        }
        Ok(Identity {
            key,
            membership,
            grant,
        })
    }

    /// The key of `scope`, if this device holds it.
    pub fn scope_key(&self, scope: &str) -> Result<Option<ScopeKey>, StoreError> {
        if let Some(master) = secret(self, "master")? {
            let community = self.community_id()?.ok_or(StoreError::NoCommunity)?;
            return Ok(Some(ScopeKey::derive(
                &key32("master", master)?,
                &community,
                scope,
            )));
        }
        let key: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT key FROM scope_keys WHERE scope = ?1",
                [scope],
                |r| r.get(0),
            )
            .optional()?;
        key.map(|k| key32("scope key", k).map(ScopeKey)).transpose()
    }

    /// Makes an invitation for a new device with `role` (and `grids`, for grid workers).
    /// Only committee staff may invite.
    pub fn invite(
        &self,
        role: Role,
        grids: &[String],
        relay: Option<&str>,
    ) -> Result<Invite, StoreError> {
        let me = self.identity()?;
        if me.grant.role != Role::Staff {
            return Err(StoreError::Identity(format!(
                "only committee staff may invite; this device is {}",
                me.grant.role.code()
            )));
        }
        let community = self.community()?;
        match role {
            Role::Grid if grids.is_empty() => {
                return Err(StoreError::Identity(
                    "a grid worker's invitation needs at least one --grid".into(),
                ));
            }
            Role::Grid => {
                if let Some(g) = grids
                    .iter()
                    .find(|g| !community.grids.iter().any(|x| &x.id == *g))
                {
                    let known: Vec<&str> = community.grids.iter().map(|x| x.id.as_str()).collect();
                    return Err(StoreError::Identity(format!(
                        "there is no grid {g} in {} (grids: {})",
                        community.name,
                        known.join(", ")
                    )));
                }
            }
            _ if !grids.is_empty() => {
                return Err(StoreError::Identity(format!(
                    "--grid is only for grid workers, not for role {}",
                    role.code()
                )));
            }
            _ => {}
        }
        let invite_key = DeviceKey::generate()?;
        let grant = Grant {
            community: community.id.clone(),
            subject: invite_key.public(),
            role,
            grids: grids.to_vec(),
            label: "invitation".into(),
            issued_ms: linli_domain::Timestamp::now().0,
        };
        let mut membership = me.membership.clone();
        membership.certs.push(Cert::issue(&me.key, grant));
        let scopes: Vec<String> = match role {
            Role::Staff => Vec::new(),
            Role::Grid => std::iter::once(COMMUNITY_WIDE.to_string())
                .chain(grids.iter().cloned())
                .collect(),
            Role::Owners => vec![COMMUNITY_WIDE.to_string()],
        };
        let mut keys = Vec::new();
        for s in scopes {
            let k = self
                .scope_key(&s)?
                .ok_or_else(|| StoreError::Identity(format!("this device has no key for {s}")))?;
            keys.push((s, k));
        }
        let master = match role {
            Role::Staff => Some(key32(
                "master",
                secret(self, "master")?
                    .ok_or_else(|| StoreError::Identity("no master secret here".into()))?,
            )?),
            _ => None,
        };
        Ok(Invite::issue(
            &me.key,
            community.name.clone(),
            membership,
            invite_key.to_bytes(),
            keys,
            master,
            relay.map(str::to_string),
        ))
    }

    /// Makes this (empty) store a member of the invitation's community.
    pub fn join(&mut self, invite: &Invite) -> Result<Grant, StoreError> {
        if let Some(c) = self.community_id()? {
            return Err(StoreError::HasCommunity(c));
        }
        let key = self.device_key()?;
        let label = self.author().device.clone();
        let membership = invite.enrol(&key, &label, linli_domain::Timestamp::now().0)?;
        let grant = membership.verify(&membership.root)?;
        let tx = self.conn_mut().transaction()?;
        set_meta(&tx, "community", &membership.community)?;
        set_meta(&tx, "community_name", &invite.name)?;
        if let Some(relay) = &invite.relay {
            set_meta(&tx, "relay", relay)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO secrets (name, value) VALUES ('membership', ?1)",
            [linli_wire::encode(&membership)],
        )?;
        if let Some(master) = &invite.master {
            tx.execute(
                "INSERT OR REPLACE INTO secrets (name, value) VALUES ('master', ?1)",
                [&master[..]],
            )?;
        }
        for (scope, k) in &invite.keys {
            tx.execute(
                "INSERT OR REPLACE INTO scope_keys (scope, key) VALUES (?1, ?2)",
                params![scope, &k.0[..]],
            )?;
        }
        tx.commit()?;
        Ok(grant)
    }

    /// The community's name as the invitation gave it (known before the community's
    /// document arrives with the first sync).
    pub fn invited_name(&self) -> Result<Option<String>, StoreError> {
        get_meta(self.conn(), "community_name")
    }

    /// The relay this store was told about, if any.
    pub fn default_relay(&self) -> Result<Option<String>, StoreError> {
        get_meta(self.conn(), "relay")
    }

    /// Makes `url` this store's relay (the user changed it).
    pub fn set_relay(&self, url: &str) -> Result<(), StoreError> {
        set_meta(self.conn(), "relay", url)
    }

    /// Remembers `url` as this store's relay if it has none yet.
    pub fn remember_relay(&self, url: &str) -> Result<(), StoreError> {
        if self.default_relay()?.is_none() {
            set_meta(self.conn(), "relay", url)?;
        }
        Ok(())
    }

    /// A number larger than any this device has used in a relay request before: its clock in
    /// ms, or just past its last one (a clock set back does not make it go back).
    pub fn next_counter(&self) -> Result<u64, StoreError> {
        let last: u64 = get_meta(self.conn(), "counter")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let now = u64::try_from(linli_domain::Timestamp::now().0).unwrap_or(0);
        let next = now.max(last + 1);
        set_meta(self.conn(), "counter", &next.to_string())?;
        Ok(next)
    }

    /// Numbers the next requests from the clock again, when the relay refused a counter as
    /// too far ahead of its own clock: the stored one came from a clock that was wrong then
    /// (the relay accepted none of those), and following it would refuse every request.
    pub fn restart_counter(&self) -> Result<(), StoreError> {
        let now = u64::try_from(linli_domain::Timestamp::now().0).unwrap_or(0);
        set_meta(self.conn(), "counter", &now.to_string())
    }

    /// `n` numbers larger than any this device has used in a relay request before, taken in
    /// one write, for a session that signs many requests while another process of the device
    /// may be writing (a write per request would wait for the store each time).
    pub fn reserve_counters(&self, n: u64) -> Result<std::ops::RangeInclusive<u64>, StoreError> {
        let first = self.next_counter()?;
        let last = first.saturating_add(n.max(1) - 1);
        set_meta(self.conn(), "counter", &last.to_string())?;
        Ok(first..=last)
    }
}

/// A device this one has synced with directly, remembered so that syncing with it again
/// needs no new ticket: the app's background loop tries it whenever it may be reachable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownPeer {
    /// Its device key (hex): one entry per device.
    pub key: String,
    /// The ticket it was last reached by.
    pub ticket: String,
    /// Who it is, in words (its role and label).
    pub label: String,
    /// Its role code (`staff`, `grid`, `owners`), for the screens to name it in their language.
    #[serde(default)]
    pub role: Option<String>,
    /// A grid worker's grids.
    #[serde(default)]
    pub grids: Vec<String>,
    /// When the last sync with it completed (ms).
    pub last_synced_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl Store {
    /// The devices this one has synced with directly, most recent first.
    pub fn known_peers(&self) -> Result<Vec<KnownPeer>, StoreError> {
        self.meta_json("known_peers")
    }

    /// Adds or updates a known peer (by its key), putting it first.
    pub fn remember_peer(&self, peer: KnownPeer) -> Result<(), StoreError> {
        let mut peers = self.known_peers()?;
        peers.retain(|p| p.key != peer.key);
        peers.insert(0, peer);
        self.save_peers(&peers)
    }

    /// Records a failed attempt to reach a known peer.
    pub fn peer_failed(&self, key: &str, error: &str) -> Result<(), StoreError> {
        let mut peers = self.known_peers()?;
        if let Some(p) = peers.iter_mut().find(|p| p.key == key) {
            p.last_error = Some(error.to_string());
        }
        self.save_peers(&peers)
    }

    /// Forgets a known peer; true if it was known.
    pub fn forget_peer(&self, key: &str) -> Result<bool, StoreError> {
        let mut peers = self.known_peers()?;
        let before = peers.len();
        peers.retain(|p| p.key != key);
        self.save_peers(&peers)?;
        Ok(peers.len() < before)
    }

    fn save_peers(&self, peers: &[KnownPeer]) -> Result<(), StoreError> {
        self.set_meta_json("known_peers", &peers)
    }

    /// A value kept as JSON in the meta table (its default when absent).
    fn meta_json<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, StoreError> {
        let damaged = |message: String| StoreError::Field {
            id: "meta".into(),
            field: key.into(),
            message,
        };
        match get_meta(self.conn(), key)? {
            None => Ok(T::default()),
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| damaged(format!("is damaged: {e}")))
            }
        }
    }

    /// Keeps a value as JSON in the meta table.
    fn set_meta_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Field {
            id: "meta".into(),
            field: key.into(),
            message: e.to_string(),
        })?;
        set_meta(self.conn(), key, &json)
    }

    /// The port this device served nearby devices on last time (so that the tickets they
    /// keep stay good), if any.
    pub fn serving_port(&self) -> Result<Option<u16>, StoreError> {
        Ok(get_meta(self.conn(), "serving_port")?.and_then(|p| p.parse().ok()))
    }

    /// Whether the user left this device serving nearby devices (it serves again at start).
    pub fn serving_wanted(&self) -> Result<bool, StoreError> {
        Ok(get_meta(self.conn(), "serving")?.as_deref() == Some("on"))
    }

    /// Records whether this device should serve nearby devices.
    pub fn set_serving_wanted(&self, on: bool) -> Result<(), StoreError> {
        set_meta(self.conn(), "serving", if on { "on" } else { "off" })
    }

    /// Minutes without use after which the app locks (none set: the default).
    pub fn lock_minutes(&self) -> Result<Option<u32>, StoreError> {
        Ok(get_meta(self.conn(), "lock_minutes")?.and_then(|v| v.parse().ok()))
    }

    /// Sets the minutes without use after which the app locks.
    pub fn set_lock_minutes(&self, minutes: u32) -> Result<(), StoreError> {
        set_meta(self.conn(), "lock_minutes", &minutes.to_string())
    }

    /// When this device last compacted its relay (`relay_client::compact`), in ms.
    pub fn compacted_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(get_meta(self.conn(), "compacted_ms")?.and_then(|v| v.parse().ok()))
    }

    /// Records that this device compacted its relay at `ms`.
    pub fn set_compacted_ms(&self, ms: i64) -> Result<(), StoreError> {
        set_meta(self.conn(), "compacted_ms", &ms.to_string())
    }

    /// The reminders this device has shown (opaque keys, see the app's reminders).
    pub fn reminded(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.meta_json("reminded")
    }

    /// Records the reminders shown (replacing the list: keys no longer due are dropped).
    pub fn set_reminded(
        &self,
        keys: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        self.set_meta_json("reminded", keys)
    }

    /// Remembers the port this device serves nearby devices on.
    pub fn set_serving_port(&self, port: u16) -> Result<(), StoreError> {
        set_meta(self.conn(), "serving_port", &port.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter stored while the clock was far ahead (the relay refused every request then)
    /// does not lock the device out once the clock is right: refused as ahead, the device
    /// starts again from its clock. A clock set back does not make the counter go back.
    #[test]
    fn counters_never_go_back_but_restart_from_the_clock_when_refused_as_ahead() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
        let now = u64::try_from(linli_domain::Timestamp::now().0).unwrap_or(0);
        let hour = linli_wire::relay::MAX_COUNTER_AHEAD_MS;
        set_meta(store.conn(), "counter", &(now + 3 * hour).to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.next_counter().unwrap_or_else(|e| panic!("{e}")),
            now + 3 * hour + 1
        );
        store.restart_counter().unwrap_or_else(|e| panic!("{e}"));
        let next = store.next_counter().unwrap_or_else(|e| panic!("{e}"));
        assert!(next >= now && next < now + hour, "{next} vs {now}");
    }
}
