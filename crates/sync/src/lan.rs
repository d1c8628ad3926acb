//! 附近设备 Finding the community's devices on the local network (office Wi-Fi, a phone's
//! hotspot), with DNS-SD over multicast DNS (the `mdns-sd` crate), so that two devices that
//! serve peer sync find each other without showing a ticket, and a known device is found again
//! when its address changed.
//!
//! A serving device announces `_linli._udp.local.` with its device key and its community's
//! tag in TXT records, at its serving addresses and port. Every device that looks lists the
//! announcements of its own community. An announcement is only a hint: the connection is
//! dialled by key (iroh checks it), and the session then checks the other device's membership,
//! so a false announcement costs one failed attempt and nothing else.
//!
//! The community's tag is a hash of its id keyed with the community-wide scope key, which every
//! member holds: a stranger on the same network sees that some Linli devices belong together,
//! but even one who knows the community's id (the relay's operator, say) cannot tell which
//! community they serve.
//!
//! Where: on loopback only when the device serves on a loopback address (tests, two stores on
//! one PC); otherwise on every interface. Nothing is announced or asked unless the device
//! serves (the user's choice) or the user asks to sync with nearby devices.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use linli_wire::PublicKey;
use linli_wire::peer::Ticket;
use mdns_sd::{IfKind, RecvTimeoutError, ServiceDaemon, ServiceEvent, ServiceInfo};
use sha2::{Digest, Sha256};

use crate::relay_client::SyncError;
use linli_store::{Store, StoreError};
use linli_wire::ScopeKey;

/// The DNS-SD service type Linli devices announce.
pub const SERVICE: &str = "_linli._udp.local.";

/// How often the browsing thread looks whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// Which interfaces to announce and look on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanScope {
    /// 127.0.0.1 only: nothing leaves this machine.
    Loopback,
    /// Every interface of this machine.
    Network,
}

impl LanScope {
    /// The scope that goes with serving (or dialling) from `bind`: loopback stays on loopback.
    pub fn of(bind: SocketAddr) -> LanScope {
        if bind.ip().is_loopback() {
            LanScope::Loopback
        } else {
            LanScope::Network
        }
    }
}

/// What the network said about a device of this community.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanEvent {
    /// A device announced itself (again, perhaps at new addresses).
    Found(Nearby),
    /// A device withdrew its announcement (it stopped serving).
    Lost(PublicKey),
}

/// A device of this community seen on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nearby {
    /// Its device key.
    pub key: PublicKey,
    /// Where it serves.
    pub addrs: Vec<SocketAddr>,
}

impl Nearby {
    /// A ticket to sync with it.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            key: self.key,
            addrs: self.addrs.clone(),
        }
    }
}

/// The tag that tells this community's announcements from others' (see the module's doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanTag(String);

impl LanTag {
    /// The tag of the community of `store`, from its id and community-wide scope key.
    pub fn of(store: &Store) -> Result<LanTag, SyncError> {
        let community = store.community_id()?.ok_or(StoreError::NoCommunity)?;
        let key = store
            .scope_key(linli_wire::COMMUNITY_WIDE)?
            .ok_or_else(|| lan_err("this device holds no community-wide key"))?;
        Ok(LanTag::keyed(&key, &community))
    }

    fn keyed(key: &ScopeKey, community: &str) -> LanTag {
        let digest = Sha256::new()
            .chain_update(b"linli lan v2\0")
            .chain_update(key.0)
            .chain_update(community.as_bytes())
            .finalize();
        LanTag(hex(&digest[..8]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex_key(s: &str) -> Option<PublicKey> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn lan_err(e: impl std::fmt::Display) -> SyncError {
    SyncError::PeerLink {
        peer: "local network".into(),
        reason: format!("discovery: {e}"),
    }
}

/// Announcing and looking on the local network, until dropped.
pub struct Lan {
    daemon: ServiceDaemon,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lan").finish_non_exhaustive()
    }
}

impl Lan {
    /// Looks for devices of the community tagged `tag` (other than `me`) and reports each
    /// announcement to `events` (on a thread of its own); announces `serving` too when given.
    pub fn start(
        tag: &LanTag,
        me: PublicKey,
        serving: Option<&Ticket>,
        scope: LanScope,
        events: impl Fn(LanEvent) + Send + 'static,
    ) -> Result<Lan, SyncError> {
        let daemon = ServiceDaemon::new().map_err(lan_err)?;
        if scope == LanScope::Loopback {
            daemon.disable_interface(IfKind::All).map_err(lan_err)?;
            daemon
                .enable_interface(IfKind::LoopbackV4)
                .map_err(lan_err)?;
        } else {
            // Loopback is on by default in mdns-sd; a device on a network has no use for it.
            daemon
                .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
                .map_err(lan_err)?;
        }
        let tag = tag.0.clone();
        if let Some(ticket) = serving {
            daemon
                .register(announcement(ticket, &tag)?)
                .map_err(lan_err)?;
        }
        let rx = daemon.browse(SERVICE).map_err(lan_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("linli-lan".into())
            .spawn(move || {
                // Fullname → key, to report a withdrawal by key.
                let mut seen: std::collections::HashMap<String, PublicKey> = Default::default();
                while !stopped.load(Ordering::Relaxed) {
                    let event = match rx.recv_timeout(POLL) {
                        Ok(e) => e,
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => continue,
                    };
                    match event {
                        ServiceEvent::ServiceResolved(info) => {
                            if info.get_property_val_str("c") != Some(tag.as_str()) {
                                continue;
                            }
                            let Some(key) = info.get_property_val_str("k").and_then(unhex_key)
                            else {
                                continue;
                            };
                            if key == me {
                                continue;
                            }
                            let port = info.get_port();
                            let mut addrs: Vec<SocketAddr> = info
                                .get_addresses()
                                .iter()
                                .map(|ip| ip.to_ip_addr())
                                .filter(usable)
                                .map(|ip| SocketAddr::new(ip, port))
                                .collect();
                            addrs.sort();
                            if addrs.is_empty() {
                                continue;
                            }
                            seen.insert(info.get_fullname().to_string(), key);
                            tracing::debug!(addrs = ?addrs, "a device of this community nearby");
                            events(LanEvent::Found(Nearby { key, addrs }));
                        }
                        ServiceEvent::ServiceRemoved(_, fullname) => {
                            if let Some(key) = seen.remove(&fullname) {
                                events(LanEvent::Lost(key));
                            }
                        }
                        _ => {}
                    }
                }
            })
            .map_err(lan_err)?;
        Ok(Lan {
            daemon,
            stop,
            thread: Some(thread),
        })
    }

    /// Looks for the devices of the community tagged `tag` and returns those found: once one has answered,
    /// as soon as no other answers for [`QUIET`] (devices answer a query within a fraction
    /// of a second), and at `wait` at the latest.
    pub fn look(
        tag: &LanTag,
        me: PublicKey,
        scope: LanScope,
        wait: Duration,
    ) -> Result<Vec<Nearby>, SyncError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let lan = Lan::start(tag, me, None, scope, move |e| {
            let _ = tx.send(e);
        })?;
        let until = Instant::now() + wait;
        let mut found: Vec<Nearby> = Vec::new();
        while let Some(mut left) = until.checked_duration_since(Instant::now()) {
            if !found.is_empty() {
                left = left.min(QUIET);
            }
            match rx.recv_timeout(left) {
                Ok(LanEvent::Found(n)) => {
                    found.retain(|f| f.key != n.key);
                    found.push(n);
                }
                Ok(LanEvent::Lost(key)) => found.retain(|f| f.key != key),
                Err(_) => break,
            }
        }
        drop(lan);
        Ok(found)
    }
}

/// How long [`Lan::look`] waits for more devices after the last one answered.
pub const QUIET: Duration = Duration::from_millis(700);

/// Addresses worth dialling: not unspecified, and not IPv6 link-local (which needs the
/// interface's scope, which a socket address from DNS-SD does not carry here).
fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The DNS-SD record of a serving device.
fn announcement(ticket: &Ticket, tag: &str) -> Result<ServiceInfo, SyncError> {
    let key = hex(&ticket.key);
    let instance = format!("linli-{}", &key[..16]);
    let host = format!("{instance}.local.");
    let port = ticket
        .addrs
        .first()
        .map(SocketAddr::port)
        .ok_or_else(|| lan_err("the ticket has no address to announce"))?;
    let ips: Vec<String> = ticket
        .addrs
        .iter()
        .map(|a| a.ip())
        .filter(usable)
        .map(|ip| ip.to_string())
        .collect();
    let props = [("v", "1"), ("c", tag), ("k", key.as_str())];
    ServiceInfo::new(SERVICE, &instance, &host, ips.join(","), port, &props[..]).map_err(lan_err)
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Withdraws the announcement (peers see it go) and stops the daemon's thread.
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
use linli_testkit::namespaces;

#[cfg(test)]
mod tests {
    use super::namespaces::isolated;
    use super::*;

    #[test]
    fn tags_differ_by_community_and_keys_round_trip() {
        let key = ScopeKey([9u8; 32]);
        assert_ne!(LanTag::keyed(&key, "c1"), LanTag::keyed(&key, "c2"));
        assert_ne!(
            LanTag::keyed(&key, "c1"),
            LanTag::keyed(&ScopeKey([8u8; 32]), "c1"),
            "without the community's key, its id does not give its tag"
        );
        assert_eq!(LanTag::keyed(&key, "c1").0.len(), 16);
        let key = [7u8; 32];
        assert_eq!(unhex_key(&hex(&key)), Some(key));
        assert_eq!(unhex_key("zz"), None);
        assert!(!usable(&"fe80::1".parse().unwrap()));
        assert!(usable(&"192.168.1.4".parse().unwrap()));
    }

    /// Two devices on loopback: one serving and announcing, one looking (in a network
    /// namespace of the test's own, see `tests/support/namespaces.rs`).
    #[test]
    fn a_serving_device_is_found_on_loopback_and_strangers_are_not() {
        if !isolated("lan::tests::a_serving_device_is_found_on_loopback_and_strangers_are_not") {
            return;
        }
        let serving = Ticket {
            key: [1u8; 32],
            addrs: vec!["127.0.0.1:40111".parse().unwrap()],
        };
        let stranger = Ticket {
            key: [2u8; 32],
            addrs: vec!["127.0.0.1:40112".parse().unwrap()],
        };
        let key = ScopeKey([9u8; 32]);
        let (ours, theirs) = (
            LanTag::keyed(&key, "community"),
            LanTag::keyed(&key, "other"),
        );
        let _a = Lan::start(
            &ours,
            serving.key,
            Some(&serving),
            LanScope::Loopback,
            |_| {},
        )
        .unwrap();
        let _b = Lan::start(
            &theirs,
            stranger.key,
            Some(&stranger),
            LanScope::Loopback,
            |_| {},
        )
        .unwrap();
        let found =
            Lan::look(&ours, [3u8; 32], LanScope::Loopback, Duration::from_secs(3)).unwrap();
        assert_eq!(
            found,
            vec![Nearby {
                key: serving.key,
                addrs: serving.addrs.clone()
            }]
        );
        // A device does not list itself.
        let own = Lan::look(
            &ours,
            serving.key,
            LanScope::Loopback,
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(own.is_empty(), "{own:?}");
    }
}
