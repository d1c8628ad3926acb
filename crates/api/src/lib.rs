//! `linli-api`: every operation the Linli app offers, defined once. The main type is [`Api`]:
//! one device's store, opened from its data directory, with a method per command of the app.
//! The Tauri shell (`src-tauri`) maps each command to one call here, and every command of the
//! command line is a call here too: both doors check roles, mask and audit the same way. Results are plain serde types; errors are [`ApiError`]
//! (`{code, message}` once serialized).
//!
//! Architecture invariant: ID numbers and phones leave this crate masked, except through
//! [`Api::reveal`], which checks the device's role and writes the audit log first.

pub mod background;
mod board;
pub mod clock;
pub mod demo;
mod drafts;
mod error;
mod overview;
mod peers;
pub mod permissions;
mod records;
mod relay;
mod requests;
mod roster;
mod rt;
pub mod setup;
mod tasks;
mod unlock;
mod views;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use linli_domain::Community;
use linli_domain::roster::{Grid, RequestCategory};
use linli_store::Store;
use linli_wire::Role;
use serde::Serialize;

pub use background::{Backoff, SyncEvent, SyncHandle, SyncPhase, SyncStatus};
pub use board::{BoardRow, NoticeView};
pub use error::{ApiError, ErrorCode};
pub use linli_store::DbKey;
pub use overview::Overview;
pub use peers::{NearbyPeer, PeerServer, PeerSync};
pub use records::{DemoFill, Doctor};
pub use relay::stop_signal;
pub use requests::{NewRequest, Reminder, ReminderKind, RequestQuery, RequestRow, RequestView};
pub use roster::{
    HouseholdQuery, HouseholdView, MemberView, NewHousehold, NewMember, NewVisit, PersonView,
    PlaceRow, RevealField, VisitRow,
};
pub use tasks::{NewTask, TaskRow, TaskView, Template};
pub use unlock::{LOCK_MINUTES, LockState, MIN_PASSPHRASE, lock_state, people, unlock};
pub use views::{
    AuditRow, BuildingNode, ChecklistRow, CompoundNode, EventView, Hit, HouseholdInfo,
    HouseholdRow, KnownPeer, LoopView, Matched, NoticeInfo, PersonInfo, PostView, ReplyView,
    RequestInfo, SetAside, StepView, TaskInfo,
};

/// Households in the demo community the app offers on first start.
pub const DEMO_HOUSEHOLDS: usize = 2000;

/// One device's Linli: its store and what it knows about syncing.
pub struct Api {
    dir: PathBuf,
    /// The key the store is encrypted with (for the handles the API opens besides its own).
    key: DbKey,
    store: Mutex<Store>,
    sync: Mutex<SyncStatus>,
    /// The last number given to a sync status read ([`SyncStatus::rev`]).
    sync_rev: std::sync::atomic::AtomicU64,
    /// Devices of this community announced on the local network (by key, hex), while this
    /// device serves.
    nearby: Mutex<std::collections::BTreeMap<String, linli_sync::lan::Nearby>>,
    /// Wakes the background loop (set while it runs).
    waker: Mutex<Option<background::Waker>>,
    /// Writes the store's log back to its file [`CHECKPOINT_EVERY`] after commits, off the
    /// path of edits and merges (long-running processes: the app, a watching or serving
    /// command line; a one-shot command leaves it to SQLite).
    checkpoints: Mutex<Option<linli_store::checkpoint::Checkpointer>>,
    /// Where the time comes from.
    clock: std::sync::Arc<dyn clock::Clock>,
}

/// How often the app's store writes its log back into the database file: what was committed
/// is durable against a power cut within this time (see `linli_store::checkpoint`).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("dir", &self.dir).finish()
    }
}

/// What the app shows first: whose device this is and what it may do.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AppStatus {
    /// The community, once created or joined.
    pub community: Option<CommunityInfo>,
    /// The device's role in it.
    pub role: Option<RoleInfo>,
    /// The person using the device (recorded in history).
    pub user: String,
    /// The device's name.
    pub device: String,
    /// Where the store lives.
    pub data_dir: String,
    /// Households on this device.
    pub households: i64,
}

/// The community, as the app needs it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct CommunityInfo {
    /// Id.
    pub id: String,
    /// 社区 name.
    pub name: String,
    /// 街道 street office.
    pub street: String,
    /// 网格 grids.
    pub grids: Vec<GridInfo>,
    /// 小区 compound names.
    pub compounds: Vec<String>,
    /// 诉求类别 request categories with their deadlines.
    pub categories: Vec<CategoryInfo>,
}

/// 网格 a grid of the community.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct GridInfo {
    /// Its id (`G01`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its grid worker.
    pub worker: String,
}

impl From<Grid> for GridInfo {
    fn from(g: Grid) -> GridInfo {
        GridInfo {
            id: g.id,
            name: g.name,
            worker: g.worker,
        }
    }
}

/// 诉求类别 a category of service requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct CategoryInfo {
    /// Its code (`utilities`).
    pub code: String,
    /// Its name.
    pub name: String,
    /// Hours to handle a request of it (处置时限).
    pub deadline_hours: u32,
}

impl From<RequestCategory> for CategoryInfo {
    fn from(c: RequestCategory) -> CategoryInfo {
        CategoryInfo {
            code: c.code,
            name: c.name,
            deadline_hours: c.deadline_hours,
        }
    }
}

/// A device's role, as the app names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum RoleCode {
    /// 社区工作人员 committee staff.
    Staff,
    /// 网格员 grid worker.
    Grid,
    /// 业委会成员 owners' committee member.
    Owners,
}

impl RoleCode {
    /// The code (`staff`, `grid`, `owners`), as the command line spells it.
    pub fn code(self) -> &'static str {
        self.role().code()
    }

    fn role(self) -> Role {
        match self {
            RoleCode::Staff => Role::Staff,
            RoleCode::Grid => Role::Grid,
            RoleCode::Owners => Role::Owners,
        }
    }
}

impl From<Role> for RoleCode {
    fn from(r: Role) -> RoleCode {
        match r {
            Role::Staff => RoleCode::Staff,
            Role::Grid => RoleCode::Grid,
            Role::Owners => RoleCode::Owners,
        }
    }
}

/// What this device may do.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct RoleInfo {
    /// The role.
    pub code: RoleCode,
    /// Grids of a grid worker.
    pub grids: Vec<String>,
    /// May see ID numbers and phones in full (each reveal is logged).
    pub may_reveal: bool,
    /// May invite devices, create tasks, see the overview of every grid.
    pub may_manage: bool,
    /// May edit the roster and record visits.
    pub may_edit_roster: bool,
    /// May publish notices (committee staff and the owners' committee; a grid worker may not).
    pub may_publish: bool,
}

impl RoleInfo {
    fn of(role: Role, grids: Vec<String>) -> RoleInfo {
        RoleInfo {
            code: role.into(),
            grids,
            may_reveal: permissions::allows(role, permissions::Action::Reveal),
            may_manage: permissions::allows(role, permissions::Action::Manage),
            may_edit_roster: permissions::allows(role, permissions::Action::EditRoster),
            may_publish: permissions::allows(role, permissions::Action::Publish),
        }
    }
}

impl Api {
    /// Opens (creating if needed) the store in `dir`, encrypted with `key` (from [`unlock`]).
    pub fn open(dir: &Path, key: DbKey) -> Result<Api, ApiError> {
        Api::with_clock(dir, key, std::sync::Arc::new(clock::SystemClock))
    }

    /// Opens the store in `dir`, reading the time from `clock` (tests set and move a
    /// [`clock::ManualClock`] instead of sleeping).
    pub fn with_clock(
        dir: &Path,
        key: DbKey,
        clock: std::sync::Arc<dyn clock::Clock>,
    ) -> Result<Api, ApiError> {
        let store = Store::open(dir, &key)?;
        let status = background::initial_status(&store)?;
        let checkpoints = store.checkpoint_in_background(CHECKPOINT_EVERY)?;
        Ok(Api {
            dir: dir.to_path_buf(),
            key,
            store: Mutex::new(store),
            sync: Mutex::new(status),
            sync_rev: std::sync::atomic::AtomicU64::new(0),
            nearby: Mutex::default(),
            waker: Mutex::default(),
            checkpoints: Mutex::new(Some(checkpoints)),
            clock,
        })
    }

    /// Opens the store in `dir` if there is one, for one command of the command line: a
    /// missing store is an error, not a new empty one, and checkpoints are left to SQLite
    /// (inline past its threshold, and at the close) unless [`Api::checkpoint_in_background`]
    /// asks otherwise (a command that runs until stopped).
    pub fn open_existing(dir: &Path, key: DbKey) -> Result<Api, ApiError> {
        if !Api::has_store(dir) {
            return Err(ApiError::NoStore(dir.to_path_buf()));
        }
        Api::open_for_command(dir, key)
    }

    /// Whether `dir` holds a store.
    pub fn has_store(dir: &Path) -> bool {
        dir.join(linli_store::store::DB_FILE).exists()
    }

    /// Opens (creating if needed) the store in `dir` for one command of the command line:
    /// checkpoints are left to SQLite (see [`Api::open_existing`]).
    pub fn open_for_command(dir: &Path, key: DbKey) -> Result<Api, ApiError> {
        let api = Api::open(dir, key)?;
        api.checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(api)
    }

    /// Moves this store's checkpoints to a thread of their own, as the app's (for a command
    /// that runs until stopped: `linli sync --watch`, `linli p2p serve`).
    pub fn checkpoint_in_background(&self) -> Result<(), ApiError> {
        let mut slot = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.store().checkpoint_in_background(CHECKPOINT_EVERY)?);
        }
        Ok(())
    }

    /// Records `user` as the person making this process's changes (not saved).
    pub fn set_user(&self, user: &str) {
        self.store().set_user(user);
    }

    /// The current instant, from this API's clock.
    pub fn now(&self) -> linli_domain::Timestamp {
        self.clock.now()
    }

    /// Today (China Standard Time), from this API's clock.
    pub fn today(&self) -> linli_domain::Day {
        self.clock.today()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The store, for one call. A panic in another call cannot leave the store half-written
    /// (every write is one SQLite transaction), so a poisoned lock is taken over.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The community, or [`ApiError::NoCommunity`].
    pub(crate) fn community(&self, store: &Store) -> Result<Community, ApiError> {
        if store.community_id()?.is_none() {
            return Err(ApiError::NoCommunity);
        }
        Ok(store.community()?)
    }

    /// The device's role; a device that created its community is staff.
    /// Why sensitive values are about to be shown by this command (the command line's
    /// `--reason`; the app gives one with each reveal): required with `--reveal`.
    pub fn set_reveal_reason(&self, reason: Option<&str>) -> Result<(), ApiError> {
        Ok(self.store().set_reveal_reason(reason)?)
    }

    /// The device's role if it may do `action`; otherwise an error naming the role and what
    /// it may not do.
    pub(crate) fn require(
        &self,
        store: &Store,
        action: permissions::Action,
    ) -> Result<RoleInfo, ApiError> {
        if store.community_id()?.is_none() {
            return Err(ApiError::NoCommunity);
        }
        let grant = store.identity()?.grant;
        if !permissions::allows(grant.role, action) {
            return Err(ApiError::Forbidden(format!(
                "this device's role, {}, may not {}",
                permissions::role_name(grant.role),
                action.describe()
            )));
        }
        Ok(RoleInfo::of(grant.role, grant.grids))
    }

    pub(crate) fn role(&self, store: &Store) -> Result<RoleInfo, ApiError> {
        if store.community_id()?.is_none() {
            return Err(ApiError::NoCommunity);
        }
        let grant = store.identity()?.grant;
        Ok(RoleInfo::of(grant.role, grant.grids))
    }

    /// Who uses this device, in which community, with which role.
    pub fn status(&self) -> Result<AppStatus, ApiError> {
        let store = self.store();
        let community = match store.community_id()? {
            None => None,
            Some(id) => Some(match store.community() {
                Ok(c) => CommunityInfo {
                    id: c.id,
                    name: c.name,
                    street: c.street,
                    grids: c.grids.into_iter().map(GridInfo::from).collect(),
                    compounds: c.compounds.into_iter().map(|x| x.name).collect(),
                    categories: c
                        .request_categories
                        .into_iter()
                        .map(CategoryInfo::from)
                        .collect(),
                },
                // Joined, and the community's document has not arrived yet.
                Err(linli_store::StoreError::NotFound(_)) => CommunityInfo {
                    name: store.invited_name()?.unwrap_or_else(|| id.clone()),
                    id,
                    street: String::new(),
                    grids: Vec::new(),
                    compounds: Vec::new(),
                    categories: linli_domain::request::default_categories()
                        .into_iter()
                        .map(CategoryInfo::from)
                        .collect(),
                },
                Err(e) => return Err(e.into()),
            }),
        };
        let role = match community {
            Some(_) => Some(self.role(&store)?),
            None => None,
        };
        Ok(AppStatus {
            community,
            role,
            user: store.author().user.clone(),
            device: store.author().device.clone(),
            data_dir: self.dir.display().to_string(),
            households: store.household_count()?,
        })
    }

    /// Creates a community on this device (which becomes its first staff device).
    pub fn create_community(
        &self,
        name: &str,
        street: &str,
        user: &str,
    ) -> Result<AppStatus, ApiError> {
        let user = required("user", user)?;
        required("name", name)?;
        {
            let mut store = self.store();
            setup::init(&mut store, name, street, None, Some(user), self.now())?;
        }
        self.status()
    }

    /// Fills a new device with the demo community (幸福社区, `households` households).
    pub fn start_demo(&self, households: usize, user: &str) -> Result<AppStatus, ApiError> {
        let user = required("user", user)?;
        {
            let mut store = self.store();
            if store.community_id()?.is_some() && store.household_count()? > 0 {
                return Err(ApiError::invalid(
                    "demo",
                    "this device already holds a community",
                ));
            }
            store.set_identity(user, None)?;
            setup::fill_demo(
                &mut store,
                households,
                households / 20,
                7,
                Some(user),
                demo::as_of(self.now()),
            )?;
        }
        self.status()
    }

    /// Joins a community with an invitation code; the device must be new.
    pub fn join(&self, code: &str, user: &str) -> Result<AppStatus, ApiError> {
        let user = required("user", user)?;
        self.join_with(code, Some(user))?;
        self.status()
    }

    /// Joins with an invitation code, recording `user` as the person at the device if given;
    /// the invitation read and what it granted.
    pub fn join_with(
        &self,
        code: &str,
        user: Option<&str>,
    ) -> Result<(linli_wire::Invite, linli_wire::Grant), ApiError> {
        let invite = linli_wire::Invite::decode(code.trim())?;
        let grant = {
            let mut store = self.store();
            if let Some(user) = user {
                store.set_identity(user, None)?;
            }
            store.join(&invite)?
        };
        if let Some(relay) = &invite.relay {
            self.sync_lock().relay = Some(relay.clone());
        }
        Ok((invite, grant))
    }

    /// An invitation code for a new device with `role` (`staff`, `grid`, `owners`) and, for
    /// a grid worker, its grids. Only staff devices invite. The code carries keys: show it
    /// once (as text or a QR code).
    pub fn invite(&self, role: &str, grids: &[String]) -> Result<String, ApiError> {
        self.invite_for(role, grids, None)
    }

    /// As [`Api::invite`], naming the relay the new device should use (default: this
    /// device's).
    pub fn invite_for(
        &self,
        role: &str,
        grids: &[String],
        relay: Option<&str>,
    ) -> Result<String, ApiError> {
        let store = self.store();
        if !self.role(&store)?.may_manage {
            return Err(ApiError::Forbidden(
                "only committee staff devices may invite".into(),
            ));
        }
        let role = Role::parse(role).ok_or_else(|| {
            ApiError::invalid(
                "role",
                format!("unknown role `{role}`: expected staff, grid or owners"),
            )
        })?;
        if role == Role::Grid && grids.is_empty() {
            return Err(ApiError::invalid(
                "grids",
                "a grid worker needs at least one grid",
            ));
        }
        let relay = match relay {
            Some(r) => Some(r.to_string()),
            None => store.default_relay()?,
        };
        Ok(store.invite(role, grids, relay.as_deref())?.encode())
    }

    /// The latest entries of this device's audit log (reveals), newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<linli_store::AuditEntry>, ApiError> {
        self.audit_since(None, limit)
    }

    /// The audit log since a day (`YYYY-MM-DD`, China time), newest first, at most `limit`
    /// entries (committee staff: the log names residents' records).
    pub fn audit_since(
        &self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<linli_store::AuditEntry>, ApiError> {
        let store = self.store();
        self.require(&store, permissions::Action::Manage)?;
        let since = match since {
            Some(day) => {
                linli_domain::Timestamp(roster::day_start_ms(roster::parse_day("since", day)?))
            }
            None => linli_domain::Timestamp(i64::MIN),
        };
        Ok(store.audit_since(since, limit.min(100_000))?)
    }

    /// Checks the audit log's hash chain (committee staff).
    pub fn audit_verify(&self) -> Result<linli_store::AuditCheck, ApiError> {
        let store = self.store();
        self.require(&store, permissions::Action::Manage)?;
        Ok(store.audit_verify()?)
    }

    /// Writes to the audit log (who: the person signed in; never a value).
    pub(crate) fn log(&self, action: &str, target: &str, detail: &str) -> Result<(), ApiError> {
        Ok(self.store().audit(action, target, detail)?)
    }

    /// A person signed in on this device (after `failures` wrong passphrases, if any).
    pub fn log_sign_in(&self, person: &str, failures: u32) -> Result<(), ApiError> {
        let detail = if failures > 0 {
            format!("after {failures} failed attempts")
        } else {
            String::new()
        };
        self.log("sign_in", person, &detail)
    }

    pub(crate) fn sync_lock(&self) -> MutexGuard<'_, SyncStatus> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Validates records with the domain's rules, then writes them in one transaction.
pub(crate) fn save(
    store: &mut Store,
    records: Vec<linli_domain::AnyRecord>,
    message: &str,
    today: linli_domain::Day,
) -> Result<(), ApiError> {
    for r in &records {
        r.validate(today)
            .map_err(|errors| linli_store::StoreError::Invalid {
                id: r.id().to_string(),
                errors,
            })?;
    }
    store.put(records, message)?;
    Ok(())
}

/// A required text field, trimmed.
pub(crate) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Ok(v)
}

/// A new record id: a prefix and 12 random hex digits.
pub(crate) fn new_id(prefix: &str) -> Result<String, ApiError> {
    let bytes: [u8; 6] = linli_wire::random_bytes()?;
    Ok(format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}
