//! What the relay bounds so that strangers cannot exhaust it: first contacts per source
//! address and hour, bytes of requests held in memory at once, connections (in all and per
//! address), free disk space, and one relay per data directory.
//!
//! Nothing here grows with the number of strangers: the per-address tables are capped and
//! forget addresses once their window has passed or their last connection closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::RelayError;

/// The most addresses whose first contacts are remembered at once: beyond it, a new address
/// is refused until old windows pass (the relay is being flooded from many addresses).
const MAX_TRACKED: usize = 4096;
/// The window first contacts are counted in.
const WINDOW: Duration = Duration::from_secs(3600);

/// The address a rate is kept for: an IPv4 address, or the /64 network of an IPv6 one (one
/// host has a whole /64 to pick addresses from).
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

/// First contacts (communities registered) per source address and in all, per hour.
#[derive(Debug)]
pub(crate) struct FirstContacts {
    per_address: u32,
    total: u32,
    state: Mutex<Contacts>,
}

#[derive(Debug, Default)]
struct Contacts {
    by_address: HashMap<IpAddr, Vec<Instant>>,
    all: Vec<Instant>,
}

impl FirstContacts {
    pub(crate) fn new(per_address: u32) -> FirstContacts {
        FirstContacts {
            per_address,
            total: per_address.saturating_mul(10),
            state: Mutex::new(Contacts::default()),
        }
    }

    /// Whether a first contact from `origin` may register a community now; when `take`,
    /// counts it. The error says when to try again.
    pub(crate) fn check(&self, origin: Option<IpAddr>, take: bool) -> Result<(), RelayError> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |t: &Instant| now.duration_since(*t) < WINDOW;
        s.all.retain(fresh);
        let retry = |times: &[Instant]| {
            times
                .first()
                .map_or(WINDOW, |t| WINDOW.saturating_sub(now.duration_since(*t)))
                .as_secs()
                .max(1)
        };
        if s.all.len() >= self.total as usize {
            return Err(RelayError::Limited {
                message: format!(
                    "this relay registers at most {} new communities an hour; try again later",
                    self.total
                ),
                retry_after: retry(&s.all),
            });
        }
        if let Some(ip) = origin.map(rate_key) {
            if !s.by_address.contains_key(&ip) && s.by_address.len() >= MAX_TRACKED {
                s.by_address.retain(|_, times| {
                    times.retain(fresh);
                    !times.is_empty()
                });
            }
            if !s.by_address.contains_key(&ip) && s.by_address.len() >= MAX_TRACKED {
                return Err(RelayError::Limited {
                    message: "this relay is registering too many new communities; try again later"
                        .into(),
                    retry_after: 60,
                });
            }
            let times = s.by_address.entry(ip).or_default();
            times.retain(fresh);
            if times.len() >= self.per_address as usize {
                let retry_after = retry(times);
                if times.is_empty() {
                    s.by_address.remove(&ip);
                }
                return Err(RelayError::Limited {
                    message: format!(
                        "at most {} new communities an hour are registered from one address; try again later",
                        self.per_address
                    ),
                    retry_after,
                });
            }
            if take {
                times.push(now);
            } else if times.is_empty() {
                s.by_address.remove(&ip);
            }
        }
        if take {
            s.all.push(now);
        }
        Ok(())
    }

    /// Addresses remembered (for tests: it stays bounded).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_address
            .len()
    }
}

/// Bytes of request bodies held in memory at once, across all connections. A request waits
/// for room a moment, then is refused as busy (503 with `Retry-After`).
#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    used: Mutex<usize>,
    freed: tokio::sync::Notify,
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Held<'_> {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget held from.
    pub(crate) fn budget(&self) -> &Budget {
        self.budget
    }

    /// Takes over what `other` holds of the same budget.
    pub(crate) fn absorb(&mut self, mut other: Held<'_>) {
        debug_assert!(std::ptr::eq(self.budget, other.budget));
        self.bytes += other.bytes;
        other.bytes = 0;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            max,
            used: Mutex::new(0),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Nothing held yet.
    pub(crate) fn none(&self) -> Held<'_> {
        Held {
            budget: self,
            bytes: 0,
        }
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes);
        drop(used);
        self.freed.notify_waiters();
    }

    /// Adds `bytes` to `held`, waiting at most `wait` for room.
    pub(crate) async fn take(
        &self,
        held: &mut Held<'_>,
        bytes: usize,
        wait: Duration,
    ) -> Result<(), RelayError> {
        if bytes > self.max {
            return Err(RelayError::BadRequest(format!(
                "a request of {bytes} bytes is larger than this relay takes ({} bytes)",
                self.max
            )));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            {
                let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                if *used + bytes <= self.max {
                    *used += bytes;
                    held.bytes += bytes;
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(RelayError::Busy {
                    message: "the relay is busy with other requests; try again shortly".into(),
                    retry_after: 5,
                });
            }
        }
    }

    /// Bytes held in all.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Open connections, in all and per address.
#[derive(Debug)]
pub(crate) struct Connections {
    max: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    conns: std::sync::Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.conns.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

impl Connections {
    pub(crate) fn new(max: usize, per_address: usize) -> Connections {
        Connections {
            max: max.max(1),
            per_address: per_address.max(1),
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// A slot for a new connection from `ip`, unless the relay or that address is at its cap.
    pub(crate) fn open(self: &std::sync::Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = rate_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let from = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.max || from >= self.per_address {
            return None;
        }
        open.0 += 1;
        *open.1.entry(ip).or_insert(0) += 1;
        Some(Slot {
            conns: self.clone(),
            ip,
        })
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

/// The most connections this process can hold: its limit on open files, less room for the
/// database, the listeners and logs.
pub(crate) fn connection_cap(wanted: usize) -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = usize::try_from(files.saturating_sub(48)).unwrap_or(usize::MAX);
    wanted.min(room).max(8)
}

/// Free bytes on the file system holding `dir` (for unprivileged users).
pub(crate) fn free_bytes(dir: &Path) -> Result<u64, RelayError> {
    let s = rustix::fs::statvfs(dir).map_err(|e| RelayError::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// An exclusive lock on a relay's data directory, held while the relay runs: a second relay
/// on the same directory would fight over its database.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    pub(crate) fn take(dir: &Path) -> Result<DirLock, RelayError> {
        let path: PathBuf = dir.join("lock");
        let io = |source: std::io::Error| RelayError::Io {
            path: path.clone(),
            source,
        };
        let file = linli_sqlite::private_file(&path).map_err(io)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(RelayError::Locked(dir.to_path_buf())),
            Err(e) => Err(io(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_contacts_are_limited_per_address_and_in_all() {
        let fc = FirstContacts::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b2: IpAddr = "2001:db8::2".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(fc.check(Some(a), true).is_ok());
        assert!(fc.check(Some(a), false).is_ok());
        assert!(fc.check(Some(a), true).is_ok());
        let e = fc.check(Some(a), true).unwrap_err();
        assert!(matches!(e, RelayError::Limited { retry_after, .. } if retry_after > 3000));
        // Another host of the same IPv6 /64 is the same address.
        assert!(fc.check(Some(b), true).is_ok());
        assert!(fc.check(Some(b2), true).is_ok());
        assert!(fc.check(Some(b), true).is_err());
        // The total: ten times the per-address limit (4 taken above).
        for i in 0..16 {
            let ip = IpAddr::from([198, 51, 100, i]);
            assert!(fc.check(Some(ip), true).is_ok());
        }
        assert!(
            fc.check(Some(IpAddr::from([198, 51, 100, 99])), true)
                .is_err()
        );
    }

    #[test]
    fn remembered_addresses_stay_bounded() {
        let fc = FirstContacts::new(1_000_000);
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let _ = fc.check(Some(IpAddr::from(i.to_be_bytes())), true);
        }
        assert!(fc.tracked() <= MAX_TRACKED);
        // Looking without taking leaves nothing behind.
        let fc = FirstContacts::new(3);
        for i in 0..10_000u32 {
            let _ = fc.check(Some(IpAddr::from(i.to_be_bytes())), false);
        }
        assert_eq!(fc.tracked(), 0);
    }

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let c = std::sync::Arc::new(Connections::new(3, 2));
        let a: IpAddr = "127.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "127.0.0.3".parse().unwrap_or_else(|e| panic!("{e}"));
        let s1 = c.open(a);
        let s2 = c.open(a);
        assert!(s1.is_some() && s2.is_some());
        assert!(c.open(a).is_none(), "per address");
        let s3 = c.open(b);
        assert!(s3.is_some());
        assert!(c.open(b).is_none(), "in all");
        drop(s1);
        assert!(c.open(b).is_some());
    }

    #[tokio::test]
    async fn the_budget_waits_then_refuses_and_gives_back() {
        let budget = Budget::new(100);
        let mut a = budget.none();
        budget
            .take(&mut a, 80, Duration::from_millis(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut b = budget.none();
        let e = budget
            .take(&mut b, 30, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(e, RelayError::Busy { .. }));
        assert!(matches!(
            budget.take(&mut b, 101, Duration::ZERO).await,
            Err(RelayError::BadRequest(_))
        ));
        drop(a);
        budget
            .take(&mut b, 30, Duration::from_millis(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(budget.used(), 30);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = DirLock::take(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            DirLock::take(dir.path()),
            Err(RelayError::Locked(_))
        ));
        drop(first);
        assert!(DirLock::take(dir.path()).is_ok());
    }
}
