//! The shapes the front end sees of stored things: its own types, converted from the
//! documents (`linli-domain`) and the store's rows (`linli-store`), so that a change of what is
//! stored does not silently change what a screen receives, and the other way round. Each
//! derives `specta::Type`: `ui/src/bindings.ts` is generated from them.

use std::collections::BTreeMap;

use linli_domain::board::{PostKind, PostStatus, Reply};
use linli_domain::request::{Event, EventKind, Satisfaction, Step};
use linli_domain::roster::DwellingUse;
use linli_domain::work::{ChecklistItem, TaskStatus};
use linli_domain::{
    Address, Area, Day, Gender, HelpPost, Household, Notice, Person, Relation, RequestState,
    Residence, ServiceRequest, Task, Tenure,
};
use serde::Serialize;

/// A household (户) as its page shows it; its members come separately, masked.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct HouseholdInfo {
    /// Id.
    pub id: String,
    /// 网格 (none: not placed in a grid).
    pub grid: Option<String>,
    /// 标准地址.
    pub address: Address,
    /// 面积 in m².
    pub area: Area,
    /// 房屋用途.
    pub usage: DwellingUse,
    /// 房屋状态.
    pub tenure: Tenure,
    /// 户主: the head's person id.
    pub head: Option<String>,
    /// Tags of the household itself.
    pub tags: Vec<String>,
    /// Notes.
    pub notes: String,
    /// Last visited on.
    pub last_visit: Option<Day>,
}

impl From<&Household> for HouseholdInfo {
    fn from(h: &Household) -> HouseholdInfo {
        HouseholdInfo {
            id: h.id.clone(),
            grid: h.scope.grid.clone(),
            address: h.address.clone(),
            area: h.area,
            usage: h.usage,
            tenure: h.tenure,
            head: h.head.clone(),
            tags: h.tags.clone(),
            notes: h.notes.clone(),
            last_visit: h.last_visit,
        }
    }
}

/// A person (实有人口) without their sensitive fields.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct PersonInfo {
    /// Id.
    pub id: String,
    /// 姓名.
    pub name: String,
    /// 性别.
    pub gender: Gender,
    /// 出生日期.
    pub birth: Day,
    /// 与户主关系.
    pub relation: Relation,
    /// 人口类型.
    pub residence: Residence,
    /// 民族.
    pub ethnicity: String,
    /// 迁入日期.
    pub moved_in: Option<Day>,
    /// 迁出日期.
    pub moved_out: Option<Day>,
    /// 死亡日期.
    pub deceased: Option<Day>,
    /// 工作单位.
    pub workplace: String,
    /// Notes.
    pub notes: String,
}

impl From<&Person> for PersonInfo {
    fn from(p: &Person) -> PersonInfo {
        PersonInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            gender: p.gender,
            birth: p.birth,
            relation: p.relation,
            residence: p.residence,
            ethnicity: p.ethnicity.clone(),
            moved_in: p.moved_in,
            moved_out: p.moved_out,
            deceased: p.deceased,
            workplace: p.workplace.clone(),
            notes: p.notes.clone(),
        }
    }
}

/// A household in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct HouseholdRow {
    /// Household id.
    pub id: String,
    /// 网格 grid.
    pub grid: Option<String>,
    /// 小区 compound.
    pub compound: String,
    /// 楼栋 building.
    pub building: String,
    /// 单元 unit.
    pub unit: String,
    /// 室 room.
    pub room: String,
    /// 房屋状态 (none: a code this version does not know).
    pub tenure: Option<Tenure>,
    /// Members living here.
    pub members: i64,
    /// 户主 the head's name.
    pub head: String,
    /// Attention tags of its members.
    pub tags: Vec<String>,
    /// Latest visit (ms since the epoch).
    pub last_visit: Option<i64>,
    /// Changed on this device and not yet at the relay.
    pub unsynced: bool,
}

impl From<linli_store::screens::HouseholdRow> for HouseholdRow {
    fn from(r: linli_store::screens::HouseholdRow) -> HouseholdRow {
        HouseholdRow {
            tenure: Tenure::parse(&r.tenure),
            id: r.id,
            grid: r.grid,
            compound: r.compound,
            building: r.building,
            unit: r.unit,
            room: r.room,
            members: r.members,
            head: r.head,
            tags: r.tags,
            last_visit: r.last_visit,
            unsynced: r.unsynced,
        }
    }
}

/// A compound (小区) with its buildings and units, and how many households each holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct CompoundNode {
    /// 小区 name.
    pub name: String,
    /// Households.
    pub households: i64,
    /// 楼栋 buildings, in address order.
    pub buildings: Vec<BuildingNode>,
}

/// A building (楼栋) of a compound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct BuildingNode {
    /// 楼栋 number.
    pub name: String,
    /// 网格 its grid.
    pub grid: Option<String>,
    /// Households.
    pub households: i64,
    /// 单元 units, in natural order.
    pub units: Vec<String>,
}

impl From<linli_store::screens::CompoundNode> for CompoundNode {
    fn from(c: linli_store::screens::CompoundNode) -> CompoundNode {
        CompoundNode {
            name: c.name,
            households: c.households,
            buildings: c
                .buildings
                .into_iter()
                .map(|b| BuildingNode {
                    name: b.name,
                    grid: b.grid,
                    households: b.households,
                    units: b.units,
                })
                .collect(),
        }
    }
}

/// What a search matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum Matched {
    /// The name.
    Name,
    /// The initials of the name's pinyin (`zxy` for 张秀英).
    Initials,
    /// The ID number.
    IdNumber,
    /// The phone.
    Phone,
    /// The address.
    Address,
}

/// A person found by a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct Hit {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Household id.
    pub household: String,
    /// Address of the household.
    pub address: String,
    /// Grid.
    pub grid: Option<String>,
    /// Relation to the head (none: a code this version does not know).
    pub relation: Option<Relation>,
    /// Lives there now (not moved out, not deceased).
    pub present: bool,
    /// What matched.
    pub matched: Matched,
}

impl Matched {
    /// The code (`initials`).
    pub fn code(self) -> &'static str {
        match self {
            Matched::Name => "name",
            Matched::Initials => "initials",
            Matched::IdNumber => "id_number",
            Matched::Phone => "phone",
            Matched::Address => "address",
        }
    }
}

impl From<linli_store::Hit> for Hit {
    fn from(h: linli_store::Hit) -> Hit {
        Hit {
            relation: Relation::parse(&h.relation),
            matched: match h.matched {
                "initials" => Matched::Initials,
                "id_number" => Matched::IdNumber,
                "phone" => Matched::Phone,
                "address" => Matched::Address,
                _ => Matched::Name,
            },
            id: h.id,
            name: h.name,
            household: h.household,
            address: h.address,
            grid: h.grid,
            present: h.present,
        }
    }
}

/// An entry of this device's audit log: who revealed or exported what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct AuditRow {
    /// Its place in the log.
    pub seq: i64,
    /// When (ms).
    pub at: i64,
    /// Who (the device's user).
    pub user: String,
    /// What (`reveal`, `export` …).
    pub action: String,
    /// Of whom or what (an id).
    pub target: String,
    /// Which field or file.
    pub detail: String,
    /// Why (the purpose given for a reveal).
    pub reason: String,
}

impl From<linli_store::AuditEntry> for AuditRow {
    fn from(e: linli_store::AuditEntry) -> AuditRow {
        AuditRow {
            seq: e.seq,
            at: e.at.0,
            user: e.user,
            action: e.action,
            target: e.target,
            detail: e.detail,
            reason: e.reason,
        }
    }
}

/// A step of a service request's loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct StepView {
    /// Id.
    pub id: String,
    /// The step it follows (none: the first).
    pub prev: Option<String>,
    /// Branches it settled.
    pub merges: Vec<String>,
    /// The state it moved to.
    pub to: RequestState,
    /// Who.
    pub by: String,
    /// When (ms).
    pub at: i64,
    /// Why (required for a return or rejection).
    pub comment: String,
}

impl From<&Step> for StepView {
    fn from(s: &Step) -> StepView {
        StepView {
            id: s.id.clone(),
            prev: s.prev.clone(),
            merges: s.merges.clone(),
            to: s.to,
            by: s.by.clone(),
            at: s.at.0,
            comment: s.comment.clone(),
        }
    }
}

/// Something that happened to a request besides its steps (a reminder, an extension …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct EventView {
    /// Id.
    pub id: String,
    /// What.
    pub kind: EventKind,
    /// Who.
    pub by: String,
    /// When (ms).
    pub at: i64,
    /// Comment.
    pub comment: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        EventView {
            id: e.id.clone(),
            kind: e.kind,
            by: e.by.clone(),
            at: e.at.0,
            comment: e.comment.clone(),
        }
    }
}

/// A service request (工单) with its history.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct RequestInfo {
    /// Id.
    pub id: String,
    /// 网格 (none: community-wide).
    pub grid: Option<String>,
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// Category code.
    pub category: String,
    /// Who reported it.
    pub reporter_name: String,
    /// The household it concerns.
    pub household: Option<String>,
    /// Reported at (ms).
    pub created: i64,
    /// Its deadline when reported (ms).
    pub deadline: i64,
    /// Steps, in the order they were recorded.
    pub steps: Vec<StepView>,
    /// Other events.
    pub events: Vec<EventView>,
    /// 满意度, once rated.
    pub satisfaction: Option<Satisfaction>,
}

impl From<&ServiceRequest> for RequestInfo {
    fn from(r: &ServiceRequest) -> RequestInfo {
        RequestInfo {
            id: r.id.clone(),
            grid: r.scope.grid.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            category: r.category.clone(),
            reporter_name: r.reporter_name.clone(),
            household: r.household.clone(),
            created: r.created.0,
            deadline: r.deadline.0,
            steps: r.steps.iter().map(StepView::from).collect(),
            events: r.events.iter().map(EventView::from).collect(),
            satisfaction: r.satisfaction,
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoopView {
    /// One current state.
    Settled {
        /// The state.
        state: RequestState,
        /// The step that put it there.
        step: String,
    },
    /// Devices moved it differently: the current step of each branch.
    Conflict {
        /// The competing steps, oldest first.
        branches: Vec<StepView>,
    },
}

impl From<&linli_domain::LoopStatus> for LoopView {
    fn from(s: &linli_domain::LoopStatus) -> LoopView {
        match s {
            linli_domain::LoopStatus::Settled { state, step } => LoopView::Settled {
                state: *state,
                step: step.clone(),
            },
            linli_domain::LoopStatus::Conflict { branches } => LoopView::Conflict {
                branches: branches.iter().map(StepView::from).collect(),
            },
        }
    }
}

/// An item of an inspection checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct ChecklistRow {
    /// Id.
    pub id: String,
    /// What to check.
    pub item: String,
    /// Passed (true), failed (false) or not checked yet.
    pub ok: Option<bool>,
    /// Note.
    pub note: String,
    /// The service request a failed item became.
    pub request: Option<String>,
}

impl From<&ChecklistItem> for ChecklistRow {
    fn from(c: &ChecklistItem) -> ChecklistRow {
        ChecklistRow {
            id: c.id.clone(),
            item: c.item.clone(),
            ok: c.ok,
            note: c.note.clone(),
            request: c.request.clone(),
        }
    }
}

/// An inspection task (巡查任务) with its checklist.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TaskInfo {
    /// Id.
    pub id: String,
    /// 网格.
    pub grid: Option<String>,
    /// Title.
    pub title: String,
    /// Its template's name.
    pub kind: String,
    /// 小区.
    pub compound: String,
    /// 楼栋.
    pub building: String,
    /// Due day.
    pub due: Option<Day>,
    /// Status.
    pub status: TaskStatus,
    /// Who does it.
    pub assignee: String,
    /// Its items.
    pub checklist: Vec<ChecklistRow>,
    /// Notes.
    pub notes: String,
}

impl From<&Task> for TaskInfo {
    fn from(t: &Task) -> TaskInfo {
        TaskInfo {
            id: t.id.clone(),
            grid: t.scope.grid.clone(),
            title: t.title.clone(),
            kind: t.kind.clone(),
            compound: t.compound.clone(),
            building: t.building.clone(),
            due: t.due,
            status: t.status,
            assignee: t.assignee.clone(),
            checklist: t.checklist.iter().map(ChecklistRow::from).collect(),
            notes: t.notes.clone(),
        }
    }
}

/// A reply to a help post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct ReplyView {
    /// Id.
    pub id: String,
    /// Who.
    pub author: String,
    /// When (ms).
    pub at: i64,
    /// What.
    pub body: String,
}

impl From<&Reply> for ReplyView {
    fn from(r: &Reply) -> ReplyView {
        ReplyView {
            id: r.id.clone(),
            author: r.author.clone(),
            at: r.at.0,
            body: r.body.clone(),
        }
    }
}

/// A neighbour-help post (邻里互助) with its replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct PostView {
    /// Id.
    pub id: String,
    /// An offer or a request of help.
    pub kind: PostKind,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Who posted it.
    pub author: String,
    /// When (ms).
    pub at: i64,
    /// Where it stands.
    pub status: PostStatus,
    /// Who took it on.
    pub claimed_by: Option<String>,
    /// Replies, oldest first.
    pub replies: Vec<ReplyView>,
}

impl From<&HelpPost> for PostView {
    fn from(p: &HelpPost) -> PostView {
        PostView {
            id: p.id.clone(),
            kind: p.kind,
            title: p.title.clone(),
            body: p.body.clone(),
            author: p.author.clone(),
            at: p.at.0,
            status: p.status,
            claimed_by: p.claimed_by.clone(),
            replies: p.replies.iter().map(ReplyView::from).collect(),
        }
    }
}

/// A notice (公告).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct NoticeInfo {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Who published it.
    pub author: String,
    /// When (ms).
    pub published: i64,
    /// Households are asked to confirm reading it.
    pub receipts_required: bool,
    /// Households that confirmed, with when (ms).
    pub receipts: BTreeMap<String, i64>,
}

impl From<&Notice> for NoticeInfo {
    fn from(n: &Notice) -> NoticeInfo {
        NoticeInfo {
            id: n.id.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            author: n.author.clone(),
            published: n.published.0,
            receipts_required: n.receipts_required,
            receipts: n.receipts.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
        }
    }
}

/// A device synced with directly before; the background loop syncs with it when it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct KnownPeer {
    /// Its device key (hex).
    pub key: String,
    /// How to reach it.
    pub ticket: String,
    /// Its role in words (English, from the device itself); `role` and `grids` name it on
    /// screen.
    pub label: String,
    /// Its role (none: not known yet).
    pub role: Option<crate::RoleCode>,
    /// Its grids.
    pub grids: Vec<String>,
    /// Last synced with (ms).
    pub last_synced_ms: Option<i64>,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

impl From<linli_store::KnownPeer> for KnownPeer {
    fn from(p: linli_store::KnownPeer) -> KnownPeer {
        KnownPeer {
            role: p
                .role
                .as_deref()
                .and_then(linli_wire::Role::parse)
                .map(crate::RoleCode::from),
            key: p.key,
            ticket: p.ticket,
            label: p.label,
            grids: p.grids,
            last_synced_ms: p.last_synced_ms,
            last_error: p.last_error,
        }
    }
}

/// A blob received from the relay that this device could not read (set aside; sync went on
/// without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct SetAside {
    /// Where it came from (`relay http://…`).
    pub peer: String,
    /// The relay's sequence number of the blob.
    pub seq: u64,
    /// The scope it was sealed for.
    pub scope: String,
    /// The sending device's key, in hex.
    pub sender: String,
    /// When it was received (ms).
    pub received_ms: i64,
    /// Why it was refused (never its contents).
    pub reason: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Nothing of it could be read (otherwise some of its documents were merged).
    pub whole: bool,
}

impl SetAside {
    /// The sender as people see it: the first 8 hex digits of its key.
    pub fn sender_short(&self) -> &str {
        self.sender.get(..8).unwrap_or(&self.sender)
    }
}

impl From<linli_store::SetAside> for SetAside {
    fn from(a: linli_store::SetAside) -> SetAside {
        SetAside {
            peer: a.peer,
            seq: a.seq,
            scope: a.scope,
            sender: a.sender,
            received_ms: a.received_ms,
            reason: a.reason,
            bytes: a.bytes,
            whole: a.whole,
        }
    }
}
