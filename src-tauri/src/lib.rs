//! Linli 邻里, the app: a thin Tauri v2 shell. Each command is one call into
//! [`linli_api::Api`], run on the blocking pool; errors reach the front end as
//! `{code, message}`; the background sync loop reports through the events `sync-status` (a
//! [`SyncStatus`]) and `docs-changed`.
//!
//! Architecture invariant: only this crate serializes data for the front end, and the front
//! end reaches the store only through these commands.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The app's allocator (desktop and Android alike): see the command line's `main.rs`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use linli_api::{
    Api, ApiError, AppStatus, Backoff, CompoundNode, HouseholdQuery, HouseholdRow, HouseholdView,
    NewHousehold, NewMember, NewRequest, NewTask, NewVisit, Overview, PersonView, Reminder,
    RequestQuery, RequestRow, RequestView, RevealField, SyncEvent, SyncHandle, SyncStatus, TaskRow,
    TaskView, Template,
};
use linli_api::{
    BoardRow, KnownPeer, NearbyPeer, NoticeView, PeerServer, PeerSync, PostView, RoleCode,
};

use linli_domain::board::{PostKind, PostStatus};
use linli_domain::request::Satisfaction;
use linli_domain::{Relation, RequestState};
use tauri::{Manager, Runtime, State};
use tauri_specta::Event;

type Res<T> = Result<T, ApiError>;

/// Runs a call of the API on the blocking pool: SQLite work (and a sync's own runtime) never
/// holds up the async runtime that serves the window's other calls.
async fn blocking<T: Send + 'static>(
    api: &Arc<Api>,
    f: impl FnOnce(&Api) -> Res<T> + Send + 'static,
) -> Res<T> {
    let api = api.clone();
    tauri::async_runtime::spawn_blocking(move || f(&api))
        .await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("a call did not finish: {e}"))))
}

/// The app's state: where the store is, the device's API once a person has unlocked it, and
/// its background sync loop.
pub struct Linli {
    dir: PathBuf,
    backoff: Backoff,
    api: std::sync::RwLock<Option<Arc<Api>>>,
    /// Failed sign-ins since the last one that worked.
    failures: std::sync::atomic::AtomicU32,
    /// Held while a passphrase is tried.
    unlocking: tokio::sync::Mutex<()>,
    sync: Mutex<Option<SyncHandle>>,
    peers: Mutex<Option<PeerServer>>,
    window: Window,
}

/// The way back to the window, once the app runs (the commands themselves stay free of the
/// runtime's type, which tauri-specta needs to describe them).
#[derive(Clone, Default)]
struct Window(Arc<std::sync::OnceLock<Box<dyn WindowHandle>>>);

/// What the commands do to the running app.
trait WindowHandle: Send + Sync {
    fn docs_changed(&self, received: usize);
    fn sync_status(&self, status: SyncStatus);
    fn exit(&self, code: i32);
}

impl<R: Runtime> WindowHandle for tauri::AppHandle<R> {
    fn docs_changed(&self, received: usize) {
        emit(self, DocsChanged(received));
    }
    fn sync_status(&self, status: SyncStatus) {
        emit(self, SyncStatusChanged(status));
    }
    fn exit(&self, code: i32) {
        tauri::AppHandle::exit(self, code);
    }
}

impl Window {
    fn docs_changed(&self, received: usize) {
        if let Some(w) = self.0.get() {
            w.docs_changed(received);
        }
    }
    fn sync_status(&self, status: SyncStatus) {
        if let Some(w) = self.0.get() {
            w.sync_status(status);
        }
    }
    fn exit(&self, code: i32) {
        if let Some(w) = self.0.get() {
            w.exit(code);
        }
    }
}

impl Linli {
    /// The device's API, once unlocked.
    fn api(&self) -> Res<Arc<Api>> {
        self.api
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ApiError::Locked)
    }

    /// Starts what runs while the store is open: the background sync loop, and serving
    /// nearby devices if the device did when it last ran.
    fn opened(&self, api: Arc<Api>) {
        *self.api.write().unwrap_or_else(|p| p.into_inner()) = Some(api.clone());
        let window = self.window.clone();
        let sync = SyncHandle::spawn(api.clone(), self.backoff, move |event| match event {
            SyncEvent::Status(s) => window.sync_status(s),
            SyncEvent::Changed { received } => window.docs_changed(received),
        });
        *self.sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(sync);
        // Left serving nearby devices last time: serve again, on the same port.
        if api.serving_wanted().unwrap_or(false)
            && let Err(e) = start_serving(self)
        {
            tracing::warn!(error = %e, "cannot serve nearby devices");
        }
    }

    fn sync_now(&self) {
        if let Some(h) = self.sync.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.sync_now();
        }
    }
}

/// The event the front end listens to for the sync status (`sync-status`).
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
#[tauri_specta(event_name = "sync-status")]
pub struct SyncStatusChanged(pub SyncStatus);

/// The event telling the front end that synced documents arrived (`docs-changed`): how
/// many.
#[derive(Debug, Clone, serde::Serialize, specta::Type, tauri_specta::Event)]
#[tauri_specta(event_name = "docs-changed")]
pub struct DocsChanged(pub usize);

/// Sends an event to the window; a window that is gone is only logged.
fn emit<R: Runtime>(app: &tauri::AppHandle<R>, event: impl Event + serde::Serialize + Clone) {
    if let Err(e) = event.emit(app) {
        tracing::warn!(error = %e, "cannot send an event to the window");
    }
}

#[tauri::command]
#[specta::specta]
async fn status(s: State<'_, Linli>) -> Res<AppStatus> {
    blocking(&s.api()?, move |api| api.status()).await
}

#[tauri::command]
#[specta::specta]
async fn create_community(
    s: State<'_, Linli>,
    name: String,
    street: String,
    user: String,
) -> Res<AppStatus> {
    blocking(&s.api()?, move |api| {
        api.create_community(&name, &street, &user)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn start_demo(s: State<'_, Linli>, user: String) -> Res<AppStatus> {
    blocking(&s.api()?, move |api| {
        api.start_demo(linli_api::DEMO_HOUSEHOLDS, &user)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn join(s: State<'_, Linli>, code: String, user: String) -> Res<AppStatus> {
    let status = blocking(&s.api()?, move |api| api.join(&code, &user)).await;
    s.sync_now();
    status
}

#[tauri::command]
#[specta::specta]
async fn invite(s: State<'_, Linli>, role: RoleCode, grids: Vec<String>) -> Res<String> {
    blocking(&s.api()?, move |api| api.invite(role.code(), &grids)).await
}

#[tauri::command]
#[specta::specta]
async fn overview(s: State<'_, Linli>) -> Res<Overview> {
    blocking(&s.api()?, move |api| api.overview()).await
}

#[tauri::command]
#[specta::specta]
async fn compounds(s: State<'_, Linli>) -> Res<Vec<CompoundNode>> {
    blocking(&s.api()?, move |api| api.compounds()).await
}

#[tauri::command]
#[specta::specta]
async fn households(s: State<'_, Linli>, query: HouseholdQuery) -> Res<Vec<HouseholdRow>> {
    blocking(&s.api()?, move |api| api.households(&query)).await
}

#[tauri::command]
#[specta::specta]
async fn household(s: State<'_, Linli>, id: String) -> Res<HouseholdView> {
    blocking(&s.api()?, move |api| api.household(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn search(s: State<'_, Linli>, text: String) -> Res<Vec<linli_api::Hit>> {
    blocking(&s.api()?, move |api| api.search(&text, 50)).await
}

#[tauri::command]
#[specta::specta]
async fn reveal(
    s: State<'_, Linli>,
    person: String,
    field: RevealField,
    reason: String,
) -> Res<String> {
    blocking(&s.api()?, move |api| {
        api.reveal(&person, field.code(), &reason)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn edit(s: State<'_, Linli>, id: String, field: String, value: String) -> Res<bool> {
    blocking(&s.api()?, move |api| api.edit(&id, &field, &value)).await
}

#[tauri::command]
#[specta::specta]
async fn add_household(s: State<'_, Linli>, input: NewHousehold) -> Res<String> {
    blocking(&s.api()?, move |api| api.add_household(&input)).await
}

#[tauri::command]
#[specta::specta]
async fn add_member(s: State<'_, Linli>, household: String, input: NewMember) -> Res<String> {
    blocking(&s.api()?, move |api| api.add_member(&household, &input)).await
}

#[tauri::command]
#[specta::specta]
async fn person(s: State<'_, Linli>, id: String) -> Res<PersonView> {
    blocking(&s.api()?, move |api| api.person(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn move_person(
    s: State<'_, Linli>,
    person: String,
    to: String,
    relation: Relation,
) -> Res<()> {
    blocking(&s.api()?, move |api| {
        api.move_person(&person, &to, relation)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn set_head(s: State<'_, Linli>, household: String, person: String) -> Res<()> {
    blocking(&s.api()?, move |api| api.set_head(&household, &person)).await
}

#[tauri::command]
#[specta::specta]
async fn move_out(s: State<'_, Linli>, person: String, day: Option<String>) -> Res<bool> {
    blocking(&s.api()?, move |api| api.move_out(&person, day.as_deref())).await
}

#[tauri::command]
#[specta::specta]
async fn mark_deceased(s: State<'_, Linli>, person: String, day: Option<String>) -> Res<bool> {
    blocking(&s.api()?, move |api| {
        api.mark_deceased(&person, day.as_deref())
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn record_visit(s: State<'_, Linli>, input: NewVisit) -> Res<String> {
    blocking(&s.api()?, move |api| api.record_visit(&input)).await
}

#[tauri::command]
#[specta::specta]
async fn requests(s: State<'_, Linli>, query: RequestQuery) -> Res<Vec<RequestRow>> {
    blocking(&s.api()?, move |api| api.requests(&query)).await
}

/// The draft of a form (what was typed and not saved yet), if one was kept.
#[tauri::command]
#[specta::specta]
async fn draft(
    s: State<'_, Linli>,
    form: String,
    subject: String,
) -> Res<Option<serde_json::Value>> {
    blocking(&s.api()?, move |api| api.draft(&form, &subject)).await
}

/// Keeps what was typed into a form (called as it is typed).
#[tauri::command]
#[specta::specta]
async fn save_draft(
    s: State<'_, Linli>,
    form: String,
    subject: String,
    value: serde_json::Value,
) -> Res<()> {
    blocking(&s.api()?, move |api| {
        api.save_draft(&form, &subject, &value)
    })
    .await
}

/// Forgets a draft: its form was saved or discarded.
#[tauri::command]
#[specta::specta]
async fn clear_draft(s: State<'_, Linli>, form: String, subject: String) -> Res<()> {
    blocking(&s.api()?, move |api| api.clear_draft(&form, &subject)).await
}

/// The requests that became overdue or nearly due since the last look (each once).
#[tauri::command]
#[specta::specta]
async fn reminders(s: State<'_, Linli>) -> Res<Vec<Reminder>> {
    blocking(&s.api()?, |api| api.reminders()).await
}

#[tauri::command]
#[specta::specta]
async fn request(s: State<'_, Linli>, id: String) -> Res<RequestView> {
    blocking(&s.api()?, move |api| api.request(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn report_request(s: State<'_, Linli>, input: NewRequest) -> Res<String> {
    blocking(&s.api()?, move |api| api.report_request(&input)).await
}

#[tauri::command]
#[specta::specta]
async fn advance_request(
    s: State<'_, Linli>,
    id: String,
    to: RequestState,
    comment: String,
) -> Res<RequestView> {
    blocking(&s.api()?, move |api| api.advance_request(&id, to, &comment)).await
}

#[tauri::command]
#[specta::specta]
async fn settle_request(
    s: State<'_, Linli>,
    id: String,
    keep: String,
    comment: String,
) -> Res<RequestView> {
    blocking(&s.api()?, move |api| {
        api.settle_request(&id, &keep, &comment)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn rate_request(
    s: State<'_, Linli>,
    id: String,
    satisfaction: Satisfaction,
) -> Res<RequestView> {
    blocking(&s.api()?, move |api| api.rate_request(&id, satisfaction)).await
}

#[tauri::command]
#[specta::specta]
async fn remind_request(s: State<'_, Linli>, id: String, comment: String) -> Res<RequestView> {
    blocking(&s.api()?, move |api| api.remind_request(&id, &comment)).await
}

#[tauri::command(async)]
#[specta::specta]
fn task_templates(s: State<'_, Linli>) -> Res<Vec<Template>> {
    Ok(s.api()?.task_templates())
}

#[tauri::command]
#[specta::specta]
async fn tasks(s: State<'_, Linli>, grid: Option<String>) -> Res<Vec<TaskRow>> {
    blocking(&s.api()?, move |api| api.tasks(grid.as_deref())).await
}

#[tauri::command]
#[specta::specta]
async fn task(s: State<'_, Linli>, id: String) -> Res<TaskView> {
    blocking(&s.api()?, move |api| api.task(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn create_task(s: State<'_, Linli>, input: NewTask) -> Res<String> {
    blocking(&s.api()?, move |api| api.create_task(&input)).await
}

#[tauri::command]
#[specta::specta]
async fn check_item(
    s: State<'_, Linli>,
    task: String,
    item: String,
    ok: bool,
    note: String,
) -> Res<TaskView> {
    blocking(&s.api()?, move |api| {
        api.check_item(&task, &item, ok, &note)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn item_to_request(s: State<'_, Linli>, task: String, item: String) -> Res<String> {
    blocking(&s.api()?, move |api| api.item_to_request(&task, &item)).await
}

#[tauri::command]
#[specta::specta]
async fn posts(s: State<'_, Linli>) -> Res<Vec<BoardRow>> {
    blocking(&s.api()?, move |api| api.posts()).await
}

#[tauri::command]
#[specta::specta]
async fn post(s: State<'_, Linli>, id: String) -> Res<PostView> {
    blocking(&s.api()?, move |api| api.post(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn create_post(
    s: State<'_, Linli>,
    kind: PostKind,
    title: String,
    body: String,
) -> Res<String> {
    blocking(&s.api()?, move |api| api.create_post(kind, &title, &body)).await
}

#[tauri::command]
#[specta::specta]
async fn reply_post(s: State<'_, Linli>, id: String, body: String) -> Res<PostView> {
    blocking(&s.api()?, move |api| api.reply_post(&id, &body)).await
}

#[tauri::command]
#[specta::specta]
async fn move_post(s: State<'_, Linli>, id: String, to: PostStatus) -> Res<PostView> {
    blocking(&s.api()?, move |api| api.move_post(&id, to)).await
}

#[tauri::command]
#[specta::specta]
async fn notices(s: State<'_, Linli>) -> Res<Vec<BoardRow>> {
    blocking(&s.api()?, move |api| api.notices()).await
}

#[tauri::command]
#[specta::specta]
async fn notice(s: State<'_, Linli>, id: String) -> Res<NoticeView> {
    blocking(&s.api()?, move |api| api.notice(&id)).await
}

#[tauri::command]
#[specta::specta]
async fn publish_notice(
    s: State<'_, Linli>,
    title: String,
    body: String,
    receipts_required: bool,
) -> Res<String> {
    blocking(&s.api()?, move |api| {
        api.publish_notice(&title, &body, receipts_required)
    })
    .await
}

#[tauri::command]
#[specta::specta]
async fn confirm_read(s: State<'_, Linli>, id: String, household: String) -> Res<NoticeView> {
    blocking(&s.api()?, move |api| api.confirm_read(&id, &household)).await
}

/// Serves nearby devices (`on`) or stops; returns the ticket while serving. Binds every
/// interface, or `LINLI_P2P_BIND` (e.g. `127.0.0.1:0` in tests).
#[tauri::command(async)]
#[specta::specta]
fn serve_peers(s: State<'_, Linli>, on: bool) -> Res<Option<String>> {
    s.api()?.set_serving_wanted(on)?;
    if !on {
        s.peers.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Ok(None);
    }
    start_serving(&s).map(Some)
}

/// Serves nearby devices (if not yet): on the port used last time, so that the tickets they
/// remember stay good, or on any port if that one is taken. Returns the ticket.
fn start_serving(s: &Linli) -> Res<String> {
    let mut peers = s.peers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = peers.as_ref() {
        return Ok(p.ticket().to_string());
    }
    let default = std::env::var("LINLI_P2P_BIND")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let emit = || {
        let window = s.window.clone();
        move |e| {
            if let SyncEvent::Changed { received } = e {
                window.docs_changed(received);
            }
        }
    };
    // On a network, also announce and look for the community's devices there; a loopback
    // address (tests) keeps everything on this machine and needs no discovery.
    let lan = !default.ip().is_loopback();
    let api = s.api()?;
    let bind = api.serving_bind(default)?;
    let server = match PeerServer::start(&api, bind, lan, emit()) {
        Ok(server) => server,
        Err(e) => {
            tracing::info!(error = %e, "the port served on before is taken; serving on another");
            PeerServer::start(&api, default, lan, emit())?
        }
    };
    let ticket = server.ticket().to_string();
    *peers = Some(server);
    Ok(ticket)
}

/// Direct sync as Settings shows it: this device's ticket while it serves, and the devices
/// it synced with before.
#[derive(Debug, Clone, serde::Serialize, specta::Type)]
struct PeersStatus {
    ticket: Option<String>,
    known: Vec<KnownPeer>,
    /// The community's devices announced on the local network (while serving there).
    nearby: Vec<NearbyPeer>,
}

#[tauri::command]
#[specta::specta]
async fn peers_status(s: State<'_, Linli>) -> Res<PeersStatus> {
    let ticket = s
        .peers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|p| p.ticket().to_string());
    let known = blocking(&s.api()?, move |api| api.known_peers()).await?;
    let nearby = s.api()?.nearby_peers();
    Ok(PeersStatus {
        ticket,
        known,
        nearby,
    })
}

#[tauri::command]
#[specta::specta]
async fn forget_peer(s: State<'_, Linli>, key: String) -> Res<bool> {
    blocking(&s.api()?, move |api| api.forget_peer(&key)).await
}

#[tauri::command]
#[specta::specta]
async fn set_aside(s: State<'_, Linli>) -> Res<Vec<linli_api::SetAside>> {
    blocking(&s.api()?, move |api| api.set_aside()).await
}

#[tauri::command]
#[specta::specta]
async fn drop_set_aside(s: State<'_, Linli>) -> Res<usize> {
    blocking(&s.api()?, move |api| api.drop_set_aside()).await
}

#[tauri::command]
#[specta::specta]
async fn sync_peer(s: State<'_, Linli>, ticket: String) -> Res<PeerSync> {
    let r = blocking(&s.api()?, move |api| api.sync_peer(&ticket)).await?;
    if r.received > 0 {
        s.window.docs_changed(r.received);
    }
    Ok(r)
}

#[tauri::command]
#[specta::specta]
async fn sync_status(s: State<'_, Linli>) -> Res<SyncStatus> {
    blocking(&s.api()?, move |api| api.sync_status()).await
}

#[tauri::command]
#[specta::specta]
async fn set_relay(s: State<'_, Linli>, url: String) -> Res<SyncStatus> {
    let status = blocking(&s.api()?, move |api| api.set_relay(&url)).await;
    s.sync_now();
    status
}

#[tauri::command]
#[specta::specta]
async fn sync_now(s: State<'_, Linli>) -> Res<SyncStatus> {
    s.sync_now();
    blocking(&s.api()?, |api| api.sync_status()).await
}

/// The app's identifier (as in `tauri.conf.json`): its data directory's name.
pub const IDENTIFIER: &str = "org.linli.app";

#[tauri::command(async)]
#[specta::specta]
fn first_screen(s: State<'_, Linli>, webview_ms: f64) -> u64 {
    let ms = started().elapsed().as_millis() as u64;
    tracing::info!(since_start_ms = ms, webview_ms, "first screen interactive");
    // `LINLI_EXIT_AFTER_FIRST_SCREEN=1`: a startup benchmark (prints, then exits).
    if std::env::var_os("LINLI_EXIT_AFTER_FIRST_SCREEN").is_some() {
        eprintln!(
            "first screen interactive: {ms} ms after start ({webview_ms:.0} ms in the webview)"
        );
        s.window.exit(0);
    }
    ms
}

/// When the process started (for the first-screen measurement).
fn started() -> &'static std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    STARTED.get_or_init(std::time::Instant::now)
}

/// Where the app keeps its store: `$LINLI_DATA`, or the platform's app data directory
/// (`~/.local/share/org.linli.app` on Linux, as Tauri's `app_data_dir`).
pub fn data_dir() -> Result<PathBuf, ApiError> {
    match std::env::var_os("LINLI_DATA") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => dirs::data_dir().map(|d| d.join(IDENTIFIER)).ok_or_else(|| {
            ApiError::Forbidden("this platform has no data directory; set LINLI_DATA".into())
        }),
    }
}

/// Whether the store is open, or what unlocking it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum Lock {
    /// Unlocked: the app works.
    Open,
    /// A new device (or a store of an older Linli): a person chooses a passphrase.
    New,
    /// A person signs in with their passphrase.
    Locked,
    /// The store is encrypted and its key file is missing or damaged: `problem` says what.
    Broken,
}

/// What the first screen needs before the store is open.
#[derive(Debug, Clone, serde::Serialize, specta::Type)]
struct LockInfo {
    /// The store's state.
    state: Lock,
    /// The people who may unlock it (their names on this device).
    people: Vec<String>,
    /// The fewest characters of a passphrase.
    min_passphrase: usize,
    /// Minutes without use after which the app locks.
    idle_minutes: u32,
    /// Why the store cannot be unlocked (its key file missing or damaged), if so.
    problem: Option<String>,
}

/// Whether the store is open, or what unlocking it needs.
#[tauri::command]
#[specta::specta]
async fn lock_state(s: State<'_, Linli>) -> Res<LockInfo> {
    let mut problem = None;
    let state = if s.api().is_ok() {
        Lock::Open
    } else {
        match linli_api::lock_state(&s.dir) {
            linli_api::LockState::New => Lock::New,
            linli_api::LockState::Locked => Lock::Locked,
            linli_api::LockState::KeyMissing => {
                problem = Some(format!(
                    "这台设备的数据已加密，但钥匙文件 store.key 不见了：请从备份恢复 {}。\
                     The store is encrypted and its key file store.key is missing: restore it to {}.",
                    s.dir.display(),
                    s.dir.display()
                ));
                Lock::Broken
            }
        }
    };
    let people = match linli_api::people(&s.dir) {
        Ok(people) => people,
        Err(e) => {
            problem = Some(e.to_string());
            Vec::new()
        }
    };
    let state = if problem.is_some() && state != Lock::Open {
        Lock::Broken
    } else {
        state
    };
    let idle_minutes = match s.api() {
        Ok(api) => blocking(&api, |api| api.lock_minutes()).await?,
        Err(_) => linli_api::LOCK_MINUTES,
    };
    Ok(LockInfo {
        state,
        people,
        min_passphrase: linli_api::MIN_PASSPHRASE,
        idle_minutes,
        problem,
    })
}

/// Lets another person use this device with their own passphrase (committee staff).
#[tauri::command]
#[specta::specta]
async fn enrol_person(s: State<'_, Linli>, person: String, passphrase: String) -> Res<Vec<String>> {
    let passphrase = zeroize::Zeroizing::new(passphrase);
    blocking(&s.api()?, move |api| api.enrol_person(&person, &passphrase)).await?;
    Ok(linli_store_people(&s.dir))
}

/// Sets the minutes without use after which the app locks (committee staff).
#[tauri::command]
#[specta::specta]
async fn set_lock_minutes(s: State<'_, Linli>, minutes: u32) -> Res<()> {
    blocking(&s.api()?, move |api| api.set_lock_minutes(minutes)).await
}

/// Locks the app (a person leaves, or it was idle): the sync loop and serving stop, the store
/// closes and its key is dropped; a passphrase opens it again.
#[tauri::command]
#[specta::specta]
async fn lock(s: State<'_, Linli>) -> Res<()> {
    s.peers.lock().unwrap_or_else(|p| p.into_inner()).take();
    s.sync.lock().unwrap_or_else(|p| p.into_inner()).take();
    s.api.write().unwrap_or_else(|p| p.into_inner()).take();
    tracing::info!("locked");
    Ok(())
}

fn linli_store_people(dir: &std::path::Path) -> Vec<String> {
    linli_api::people(dir).unwrap_or_default()
}

/// Unlocks the store with a person's passphrase (on a new device: sets it, for `person`),
/// then starts syncing. Deriving the key takes a moment (Argon2id): off the window's thread.
#[tauri::command]
#[specta::specta]
async fn unlock(s: State<'_, Linli>, person: String, passphrase: String) -> Res<AppStatus> {
    let passphrase = zeroize::Zeroizing::new(passphrase);
    // One attempt at a time: a second (a double press) waits, then finds the store open;
    // attempts in parallel cannot share one count of failures.
    let _one = s.unlocking.lock().await;
    if let Ok(api) = s.api() {
        return blocking(&api, |api| api.status()).await;
    }
    // After failed attempts, each next one waits longer (3 free, then 2, 4, 8 … 60 s): a
    // person who mistyped barely notices, guessing at the screen becomes slow.
    let failures = s.failures.load(std::sync::atomic::Ordering::Relaxed);
    if failures >= 3 {
        let wait = 2u64.saturating_pow(failures - 2).min(60);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    let dir = s.dir.clone();
    let opened = tauri::async_runtime::spawn_blocking(move || -> Res<(Api, String)> {
        let person = person.trim();
        if person.is_empty() {
            return Err(ApiError::Invalid {
                field: "person".into(),
                message: "is required".into(),
            });
        }
        let (key, person) = linli_api::unlock(&dir, person, &passphrase)?;
        let api = open(&dir, key)?;
        Ok((api, person))
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::Internal(format!("a call did not finish: {e}"))));
    let (api, person) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            if e.code() == linli_api::ErrorCode::WrongPassphrase {
                s.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(failures = failures + 1, "a failed sign-in");
            }
            return Err(e);
        }
    };
    s.failures.store(0, std::sync::atomic::Ordering::Relaxed);
    // What this person changes is recorded as theirs.
    api.set_user(&person);
    api.log_sign_in(&person, failures)?;
    let api = Arc::new(api);
    s.opened(api.clone());
    blocking(&api, |api| api.status()).await
}

/// Opens the device's store with its key; with `LINLI_DEMO=N`, a new device starts on the
/// demo community with N households.
pub fn open(dir: &std::path::Path, key: linli_api::DbKey) -> Result<Api, ApiError> {
    let api = Api::open(dir, key)?;
    if let Some(n) = std::env::var("LINLI_DEMO")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        && api.status()?.community.is_none()
    {
        let started = std::time::Instant::now();
        api.start_demo(n, "演示用户")?;
        tracing::info!(
            households = n,
            ms = started.elapsed().as_millis() as u64,
            "demo community created"
        );
    }
    Ok(api)
}

/// The commands and events of the front end, described for tauri-specta: the same list
/// serves the calls (`invoke_handler`) and writes `ui/src/bindings.ts` (see
/// [`write_bindings`]), so the front end's client cannot drift from the Rust definitions.
pub fn commands<R: Runtime>() -> tauri_specta::Builder<R> {
    tauri_specta::Builder::<R>::new()
        .commands(tauri_specta::collect_commands![
            lock_state,
            unlock,
            lock,
            set_lock_minutes,
            enrol_person,
            status,
            create_community,
            start_demo,
            join,
            invite,
            overview,
            compounds,
            households,
            household,
            search,
            reveal,
            edit,
            add_household,
            add_member,
            person,
            move_person,
            set_head,
            move_out,
            mark_deceased,
            record_visit,
            requests,
            reminders,
            draft,
            save_draft,
            clear_draft,
            request,
            report_request,
            advance_request,
            settle_request,
            rate_request,
            remind_request,
            task_templates,
            tasks,
            task,
            create_task,
            check_item,
            item_to_request,
            posts,
            post,
            create_post,
            reply_post,
            move_post,
            notices,
            notice,
            publish_notice,
            confirm_read,
            serve_peers,
            sync_peer,
            peers_status,
            forget_peer,
            set_aside,
            drop_set_aside,
            sync_status,
            set_relay,
            sync_now,
            first_screen,
        ])
        .events(tauri_specta::collect_events![
            SyncStatusChanged,
            DocsChanged
        ])
        // The error of every command, `{ code, message }`: the front end narrows a caught
        // value to it (`isApiError`).
        .typ::<ApiError>()
        // Commands throw their `ApiError`, as `invoke` does.
        .error_handling(tauri_specta::ErrorHandlingMode::Throw)
        // Counts and instants (ms) stay far below 2^53: plain numbers in TypeScript.
        .dangerously_cast_bigints_to_number()
        // One type per shape, not one to send and one to receive.
        .disable_serde_phases()
}

/// Writes the front end's TypeScript client (commands, events and every type they carry) to
/// `path`.
pub fn write_bindings(path: &std::path::Path) -> Result<(), String> {
    commands::<tauri::Wry>()
        .export(
            specta_typescript::Typescript::default().header(
                "// Generated from the Rust definitions of src-tauri and linli-api by \
                 `cargo test -p linli-app bindings` (src-tauri/src/lib.rs): do not edit.",
            ),
            path,
        )
        .map_err(|e| e.to_string())
}

/// The app on any runtime (the real one, or `tauri::test::mock_builder()` in tests) on the
/// store in `dir`: state and commands; once a person unlocks the store (or with `api`, opened
/// already), the background sync loop. `LINLI_PASSPHRASE` unlocks at start (kiosks, tests).
pub fn app<R: Runtime>(
    builder: tauri::Builder<R>,
    dir: PathBuf,
    api: Option<Arc<Api>>,
    backoff: Backoff,
) -> tauri::Builder<R> {
    let commands = commands::<R>();
    builder
        .manage(Linli {
            dir,
            backoff,
            api: std::sync::RwLock::new(api.clone()),
            failures: std::sync::atomic::AtomicU32::new(0),
            unlocking: tokio::sync::Mutex::new(()),
            sync: Mutex::new(None),
            peers: Mutex::new(None),
            window: Window::default(),
        })
        .invoke_handler(commands.invoke_handler())
        .setup(move |app| {
            commands.mount_events(app);
            let linli = app.state::<Linli>();
            let _ = linli.window.0.set(Box::new(app.handle().clone()));
            let api = match api.clone() {
                Some(api) => Some(api),
                None => match std::env::var("LINLI_PASSPHRASE") {
                    Ok(passphrase) if !passphrase.is_empty() => {
                        let passphrase = zeroize::Zeroizing::new(passphrase);
                        let person = std::env::var("LINLI_USER").unwrap_or_else(|_| "admin".into());
                        // A passphrase that does not open the store leaves the app locked, on
                        // its sign-in screen.
                        match linli_api::unlock(&linli.dir, &person, &passphrase)
                            .and_then(|(key, person)| Ok((open(&linli.dir, key)?, person)))
                        {
                            Ok((api, person)) => {
                                api.set_user(&person);
                                if let Err(e) = api.log_sign_in(&person, 0) {
                                    tracing::warn!(error = %e, "cannot log the sign-in");
                                }
                                Some(Arc::new(api))
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "LINLI_PASSPHRASE does not unlock the store");
                                None
                            }
                        }
                    }
                    _ => None,
                },
            };
            if let Some(api) = api {
                linli.opened(api);
            }
            Ok(())
        })
}

/// Starts the app (desktop `main`, and the entry point of the Android build).
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    started();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINLI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: not into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The store opens once a person unlocks it; a directory that cannot hold it is reported
    // now, before any window.
    let dir = match data_dir().and_then(|dir| {
        std::fs::create_dir_all(&dir)
            .map(|()| dir.clone())
            .map_err(|source| ApiError::Read { path: dir, source })
    }) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot open Linli's store: {e}");
            std::process::exit(1);
        }
    };
    let app = app(tauri::Builder::default(), dir, None, Backoff::default())
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|handle, event| {
            // Stop the sync loop before the process ends: a sync in flight finishes its
            // SQLite transaction or rolls it back, never half-writes.
            if let tauri::RunEvent::Exit = event
                && let Some(linli) = handle.try_state::<Linli>()
            {
                linli.sync.lock().unwrap_or_else(|p| p.into_inner()).take();
                linli.peers.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
        }),
        Err(e) => {
            eprintln!("error: cannot start Linli: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{
        INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
    };
    use tauri::webview::InvokeRequest;
    use tauri::{App, WebviewWindow, WebviewWindowBuilder};

    use super::*;

    fn start(dir: &std::path::Path) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
        let api = Arc::new(Api::open(dir, linli_testkit::key()).unwrap());
        let app = app(
            mock_builder(),
            dir.to_path_buf(),
            Some(api),
            Backoff::default(),
        )
        .build(mock_context(noop_assets()))
        .expect("the app builds on the mock runtime");
        let window = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("a window");
        (app, window)
    }

    /// `ui/src/bindings.ts` is what the Rust definitions generate. When it is not, the test
    /// rewrites it and fails: the front end's type check then shows every use of what
    /// changed, and the new file is committed with the change.
    #[test]
    fn the_front_end_bindings_are_current() {
        let committed =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("bindings.ts");
        write_bindings(&fresh).unwrap();
        let fresh = std::fs::read_to_string(&fresh).unwrap();
        let old = std::fs::read_to_string(&committed).unwrap_or_default();
        if old != fresh {
            std::fs::write(&committed, &fresh).unwrap();
            panic!(
                "ui/src/bindings.ts did not match the Rust commands and types; it has been \
                 rewritten: run `npm run typecheck`, fix what it finds, and commit the file"
            );
        }
    }

    #[test]
    fn the_identifier_is_tauri_conf_s() {
        let conf: Value = serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        assert_eq!(conf["identifier"], IDENTIFIER);
    }

    /// Invokes a command as the front end does; `Ok(value)` or `Err({code, message})`.
    fn call(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                // The local origin of the bundled UI on Linux and macOS.
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap())
    }

    #[test]
    fn commands_reach_the_store_and_errors_carry_a_code() {
        let dir = tempfile::tempdir().unwrap();
        let (_app, w) = start(dir.path());
        let status = call(&w, "status", json!({})).unwrap();
        assert_eq!(status["community"], Value::Null);

        let err = call(&w, "overview", json!({})).unwrap_err();
        assert_eq!(err["code"], "no_community");
        assert!(
            err["message"].as_str().unwrap().contains("no community"),
            "{err}"
        );

        let err = call(
            &w,
            "create_community",
            json!({"name": "幸福社区", "street": "", "user": " "}),
        )
        .unwrap_err();
        assert_eq!(
            (err["code"].as_str(), err["message"].as_str()),
            (Some("invalid"), Some("user: is required"))
        );

        let status = call(
            &w,
            "create_community",
            json!({"name": "幸福社区", "street": "和平街道", "user": "王芳"}),
        )
        .unwrap();
        assert_eq!(status["community"]["name"], "幸福社区");
        assert_eq!(status["role"]["code"], "staff");

        let id = call(
            &w,
            "add_household",
            json!({"input": {
                "address": {"compound": "幸福里小区", "building": "3", "unit": "2", "room": "501"},
                "grid": "G01", "tenure": "owner_occupied", "area_m2": 68.5,
                "head_name": "张秀英", "gender": "female", "birth": "1949-12-31",
                "residence": "registered", "id_type": "resident_id",
                "id_number": "11010519491231002X", "phone": "13812345678", "tags": ["独居老人"]
            }}),
        )
        .unwrap();
        let id = id.as_str().unwrap().to_string();

        let rows = call(
            &w,
            "households",
            json!({"query": {"compound": "幸福里小区"}}),
        )
        .unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 1);
        assert_eq!(rows[0]["head"], "张秀英");

        let page = call(&w, "household", json!({"id": id})).unwrap();
        assert_eq!(page["members"][0]["phone"], "138****5678");
        assert!(
            !page.to_string().contains("13812345678"),
            "masked everywhere: {page}"
        );
        let person = page["members"][0]["person"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let err = call(
            &w,
            "reveal",
            json!({"person": person, "field": "phone", "reason": " "}),
        )
        .unwrap_err();
        assert!(err["message"].as_str().unwrap().contains("reason"), "{err}");
        let full = call(
            &w,
            "reveal",
            json!({"person": person, "field": "phone", "reason": "入户核实"}),
        )
        .unwrap();
        assert_eq!(full, "13812345678");

        let hits = call(&w, "search", json!({"text": "zxy"})).unwrap();
        assert_eq!(hits[0]["name"], "张秀英");

        let page = call(&w, "person", json!({"id": person})).unwrap();
        assert_eq!(page["household"], id.as_str());
        assert_eq!(page["member"]["phone"], "138****5678");
        assert_eq!(page["reveals"][0]["detail"], "phone", "{page}");
        assert_eq!(page["reveals"][0]["reason"], "入户核实", "{page}");
        assert!(!page.to_string().contains("13812345678"), "{page}");
        let err = call(
            &w,
            "move_person",
            json!({"person": person, "to": id, "relation": "other"}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid");
        let err = call(
            &w,
            "move_person",
            json!({"person": person, "to": id, "relation": "cousin"}),
        )
        .unwrap_err();
        // Named by its field and the values allowed; the value given is not repeated (it
        // could be a phone typed in the wrong place).
        let text = err.to_string();
        assert!(
            text.contains("relation") && text.contains("spouse"),
            "{err}"
        );
        assert!(!text.contains("cousin"), "{err}");

        let rq = call(
            &w,
            "report_request",
            json!({"input": {
                "title": "楼道灯坏了", "category": "utilities", "household": id
            }}),
        )
        .unwrap();
        let view = call(
            &w,
            "advance_request",
            json!({"id": rq, "to": "accepted", "comment": ""}),
        )
        .unwrap();
        assert_eq!(view["status"]["state"], "accepted");
        // Just reported (24 h left of 24 h): nothing to remind of yet.
        assert_eq!(call(&w, "reminders", json!({})).unwrap(), json!([]));
        let err = call(
            &w,
            "advance_request",
            json!({"id": rq, "to": "closed", "comment": ""}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "step");

        let err = call(
            &w,
            "record_visit",
            json!({"input": {
                "household": id, "method": "in_person", "outcome": "not_home"
            }}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid");
        assert!(
            err["message"].as_str().unwrap().contains("retry_on"),
            "{err}"
        );

        let sync = call(&w, "sync_status", json!({})).unwrap();
        assert_eq!(sync["phase"], "no_relay");
        let err = call(&w, "set_relay", json!({"url": "ftp://x"})).unwrap_err();
        assert_eq!(err["code"], "invalid");
        assert!(
            err["message"].as_str().unwrap().starts_with("url: "),
            "{err}"
        );
        assert_eq!(
            call(&w, "sync_status", json!({})).unwrap()["phase"],
            "no_relay",
            "nothing was saved"
        );
        // An https relay needs its certificate's pin.
        let err = call(&w, "set_relay", json!({"url": "https://127.0.0.1:9"})).unwrap_err();
        assert!(
            err["message"].as_str().unwrap().contains("#sha256="),
            "{err}"
        );
        let pinned = format!("https://127.0.0.1:9#sha256={}", "ab".repeat(32));
        call(&w, "set_relay", json!({"url": pinned})).unwrap();
        // A relay set, then changed: the new address is the one used.
        for url in ["http://127.0.0.1:9", "http://127.0.0.1:10/"] {
            call(&w, "set_relay", json!({"url": url})).unwrap();
        }
        assert_eq!(
            call(&w, "sync_status", json!({})).unwrap()["relay"],
            "http://127.0.0.1:10"
        );

        let task = call(
            &w,
            "create_task",
            json!({"input": {
                "template": "楼道杂物清理巡查", "compound": "幸福里小区", "building": "3"
            }}),
        )
        .unwrap();
        let view = call(
            &w,
            "check_item",
            json!({"task": task, "item": "i1", "ok": false, "note": "堆放纸箱"}),
        )
        .unwrap();
        assert_eq!(view["task"]["status"], "in_progress");
        let rq2 = call(&w, "item_to_request", json!({"task": task, "item": "i1"})).unwrap();
        assert!(rq2.as_str().unwrap().starts_with("rq-"));
        let rows = call(&w, "tasks", json!({"grid": null})).unwrap();
        assert_eq!(
            (rows[0]["checked"].as_u64(), rows[0]["items"].as_u64()),
            (Some(1), Some(3))
        );

        let post = call(
            &w,
            "create_post",
            json!({"kind": "offer", "title": "可以帮忙取快递", "body": ""}),
        )
        .unwrap();
        let claimed = call(&w, "move_post", json!({"id": post, "to": "claimed"})).unwrap();
        assert_eq!(claimed["claimed_by"], "王芳");
        let notice = call(
            &w,
            "publish_notice",
            json!({"title": "停水通知", "body": "周五停水", "receiptsRequired": true}),
        )
        .unwrap();
        let read = call(&w, "confirm_read", json!({"id": notice, "household": id})).unwrap();
        assert_eq!(read["confirmed"], 1);

        let overview = call(&w, "overview", json!({})).unwrap();
        assert_eq!(overview["households"], 1);
        assert_eq!(overview["open_requests"], 2);
    }

    fn start_locked(dir: &std::path::Path) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
        let app = app(mock_builder(), dir.to_path_buf(), None, Backoff::default())
            .build(mock_context(noop_assets()))
            .expect("the app builds on the mock runtime");
        let window = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("a window");
        (app, window)
    }

    #[test]
    fn a_new_device_sets_a_passphrase_and_a_locked_one_opens_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_app, w) = start_locked(dir.path());
            let lock = call(&w, "lock_state", json!({})).unwrap();
            assert_eq!(
                (lock["state"].as_str(), lock["min_passphrase"].as_u64()),
                (Some("new"), Some(10))
            );
            assert_eq!(call(&w, "status", json!({})).unwrap_err()["code"], "locked");
            let err = call(
                &w,
                "unlock",
                json!({"person": "王芳", "passphrase": "short"}),
            )
            .unwrap_err();
            assert_eq!(err["code"], "invalid", "{err}");
            assert!(
                err["message"].as_str().unwrap().contains("passphrase"),
                "{err}"
            );
            let status = call(
                &w,
                "unlock",
                json!({"person": "王芳", "passphrase": "一二三四五六七八九十"}),
            )
            .unwrap();
            assert_eq!(status["community"], Value::Null);
            assert_eq!(call(&w, "lock_state", json!({})).unwrap()["state"], "open");
            call(
                &w,
                "create_community",
                json!({"name": "幸福社区", "street": "", "user": "王芳"}),
            )
            .unwrap();
        }
        // The store is encrypted: nothing of it in the file or its write-ahead log.
        let mut bytes = std::fs::read(dir.path().join("linli.sqlite")).unwrap();
        bytes.extend(std::fs::read(dir.path().join("linli.sqlite-wal")).unwrap_or_default());
        assert!(!bytes.starts_with(b"SQLite format 3\0"));
        assert!(
            !bytes
                .windows("幸福社区".len())
                .any(|w| w == "幸福社区".as_bytes())
        );
        let (_app, w) = start_locked(dir.path());
        let lock = call(&w, "lock_state", json!({})).unwrap();
        assert_eq!(
            (lock["state"].as_str(), lock["people"].clone()),
            (Some("locked"), json!(["王芳"]))
        );
        let err = call(
            &w,
            "unlock",
            json!({"person": "王芳", "passphrase": "not the passphrase"}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "wrong_passphrase", "{err}");
        let status = call(
            &w,
            "unlock",
            json!({"person": "王芳", "passphrase": "一二三四五六七八九十"}),
        )
        .unwrap();
        assert_eq!(status["community"]["name"], "幸福社区");
    }

    #[test]
    fn unknown_arguments_are_refused_with_the_argument_named() {
        let dir = tempfile::tempdir().unwrap();
        let (_app, w) = start(dir.path());
        let err = call(&w, "household", json!({})).unwrap_err();
        assert!(err.to_string().contains("id"), "{err}");
    }

    #[test]
    fn a_draft_is_kept_read_back_and_cleared_through_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let (_app, w) = start(dir.path());
        let args = json!({"form": "request.new", "subject": ""});
        assert_eq!(call(&w, "draft", args.clone()).unwrap(), Value::Null);
        let value = json!({"title": "楼道灯坏了", "description": "三楼"});
        call(
            &w,
            "save_draft",
            json!({"form": "request.new", "subject": "", "value": value}),
        )
        .unwrap();
        assert_eq!(call(&w, "draft", args.clone()).unwrap(), value);
        let err = call(
            &w,
            "save_draft",
            json!({"form": "Request", "subject": "", "value": value}),
        )
        .unwrap_err();
        assert_eq!(err["code"], "invalid", "{err}");
        assert!(err["message"].as_str().unwrap().contains("form"), "{err}");
        call(&w, "clear_draft", args.clone()).unwrap();
        assert_eq!(call(&w, "draft", args).unwrap(), Value::Null);
    }
}
