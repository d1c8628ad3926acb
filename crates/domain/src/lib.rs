//! Linli's domain model: the records a community committee keeps (the 一标三实 roster, visits,
//! inspection tasks, service requests, help posts, notices, owners' ballots), their validation
//! rules and workflows. No I/O: everything here is plain data and pure functions.
//!
//! Each record is one Automerge document. Types derive autosurgeon's [`Hydrate`] and
//! [`Reconcile`] (the document mapping) and serde (JSON for import, export and scripts); list
//! items carry `#[key]` so that concurrent edits merge per item. The main trait is [`Record`].
//!
//! A household is two documents: the [`Household`] with its members ([`Person`]: name, birth,
//! relation, …) and its [`Sensitive`] document (each member's ID number, phone, attention
//! tags, health), so that sensitive data can be withheld, encrypted and erased on its own (see
//! `ARCHITECTURE.md`). [`PersonRecord`] joins a member and their sensitive fields.

pub mod ballot;
pub mod board;
mod hydrate;
pub mod interchange;
pub mod mask;
mod patch;
pub mod request;
pub mod roster;
pub mod validate;
pub mod value;
pub mod work;

use std::fmt::Debug;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use ballot::{Ballot, Choice, Matter, MatterKind, Vote};
pub use board::{HelpPost, Notice, PostKind, PostStatus, Reply};
pub use request::{LoopStatus, RequestState, ServiceRequest, Step};
pub use roster::{
    Address, Community, Gender, Household, IdType, Organisation, Person, PersonRecord, Relation,
    Residence, Sensitive, SensitiveFields, Tenure, validate_household,
};
pub use validate::{FieldError, ValidationErrors};
pub use value::{Area, Day, Timestamp};
pub use work::{ChecklistItem, Task, TaskStatus, Visit};

str_enum! {
    /// The collection a record belongs to; the plural is what `linli list` takes.
    pub enum Collection {
        /// 社区 the community itself: name, grids, compounds, request categories
        Community = ("community", "社区", "community"),
        /// 户 households
        Household = ("households", "户", "households"),
        /// 实有人口 people: members of households, listed from the household documents
        Person = ("people", "实有人口", "people"),
        /// a household's sensitive document: its members' ID numbers, phones, tags, health
        Sensitive = ("sensitive", "敏感信息", "sensitive data"),
        /// 实有单位 organisations
        Organisation = ("organisations", "实有单位", "organisations"),
        /// 入户走访 visits
        Visit = ("visits", "入户走访", "visits"),
        /// 巡查任务 inspection tasks
        Task = ("tasks", "巡查任务", "tasks"),
        /// 居民诉求 service requests
        Request = ("requests", "居民诉求", "requests"),
        /// 邻里互助 help posts
        Post = ("posts", "邻里互助", "help posts"),
        /// 公告 notices
        Notice = ("notices", "公告", "notices"),
        /// 业主表决 owners' ballots
        Ballot = ("ballots", "业主表决", "ballots"),
    }
}

/// Where the records of a collection may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In one grid (网格): households, their sensitive documents, visits, inspection tasks.
    Grid,
    /// Community-wide (`*`): the community, help posts, notices, ballots. Every member,
    /// owners' committee devices included, receives them.
    CommunityWide,
    /// Either: organisations, service requests.
    Either,
}

impl Collection {
    /// Where records of this collection may live. A sensitive document is never
    /// community-wide (owners' committee members would receive ID numbers).
    pub fn placement(self) -> Placement {
        match self {
            Collection::Household
            | Collection::Person
            | Collection::Sensitive
            | Collection::Visit
            | Collection::Task => Placement::Grid,
            Collection::Community | Collection::Post | Collection::Notice | Collection::Ballot => {
                Placement::CommunityWide
            }
            Collection::Organisation | Collection::Request => Placement::Either,
        }
    }
}

impl Scope {
    /// Checks that a record of `collection` may live in this scope: the community id given,
    /// a grid for grid records (of the grid id form: `G01`), none for community-wide ones.
    pub fn check(&self, collection: Collection) -> Result<(), ValidationErrors> {
        let mut v = validate::Validator::new();
        self.check_into(&mut v, collection);
        v.finish()
    }

    fn check_into(&self, v: &mut validate::Validator, collection: Collection) {
        if self.community.trim().is_empty() {
            v.error("scope.community", "is required");
        }
        match (&self.grid, collection.placement()) {
            (None, Placement::Grid) => v.error(
                "scope.grid",
                format!(
                    "{} belong to a grid (网格), not to the whole community",
                    collection.en()
                ),
            ),
            (Some(_), Placement::CommunityWide) => v.error(
                "scope.grid",
                format!(
                    "{} belong to the whole community, not to a grid",
                    collection.en()
                ),
            ),
            (Some(g), _) => v.check("scope.grid", validate::check_grid(g)),
            (None, _) => {}
        }
    }
}

/// Where a record belongs, for partial replication: its community and, for records of one
/// grid (households, people, tasks, visits), that grid. `grid: None` = community-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile)]
pub struct Scope {
    /// 社区 community id
    pub community: String,
    /// 网格 grid id (`G01`), or none for community-wide records
    pub grid: Option<String>,
}

crate::hydrate::record_fields!(Scope { community, grid });

impl Scope {
    /// A community-wide scope.
    pub fn community(community: impl Into<String>) -> Scope {
        Scope {
            community: community.into(),
            grid: None,
        }
    }
    /// A scope of one grid.
    pub fn grid(community: impl Into<String>, grid: impl Into<String>) -> Scope {
        Scope {
            community: community.into(),
            grid: Some(grid.into()),
        }
    }
}

/// A record kept as one Automerge document.
pub trait Record:
    Hydrate + Reconcile + Serialize + DeserializeOwned + Clone + PartialEq + Debug
{
    /// The collection of every record of this type.
    const COLLECTION: Collection;
    /// The stable id (also the document id).
    fn id(&self) -> &str;
    /// The replication scope.
    fn scope(&self) -> &Scope;
    /// A one-line summary for lists.
    fn title(&self) -> String;
    /// Checks the rules that the record alone can check; `today` bounds dates.
    fn validate(&self, today: Day) -> Result<(), ValidationErrors>;
}

/// Implements [`Record`]'s plumbing for a struct with `id`, `collection` and `scope` fields.
macro_rules! record_impl {
    ($ty:ty, $coll:expr, |$s:ident| $title:expr, |$v:ident, $today:ident| $validate:block) => {
        impl $crate::Record for $ty {
            const COLLECTION: $crate::Collection = $coll;
            fn id(&self) -> &str {
                &self.id
            }
            fn scope(&self) -> &$crate::Scope {
                &self.scope
            }
            fn title(&self) -> String {
                let $s = self;
                $title
            }
            fn validate(&self, $today: $crate::Day) -> Result<(), $crate::ValidationErrors> {
                let mut $v = $crate::validate::Validator::new();
                $v.require("id", &self.id);
                if self.collection != $coll {
                    $v.error("collection", format!("must be {}", $coll.code()));
                }
                $v.check("id", $crate::validate::check_id(&self.id));
                self.scope.check_into(&mut $v, $coll);
                let _ = $today;
                {
                    let $s = self;
                    let _ = $s;
                    $validate
                }
                // Every text: its length, no control characters (see `check_texts`).
                match serde_json::to_value(self) {
                    Ok(value) => $crate::validate::check_texts(&mut $v, &value),
                    Err(e) => $v.error("", format!("cannot be read as JSON: {e}")),
                }
                $v.finish()
            }
        }
    };
}
pub(crate) use record_impl;

/// Attention tags (重点人群) every community uses; cities add their own free-form tags.
pub const STANDARD_TAGS: &[(&str, &str)] = &[
    ("独居老人", "elderly living alone"),
    ("残疾人", "disabled"),
    ("低保", "subsistence allowance"),
    ("退役军人", "veteran"),
    ("流动人口", "floating population"),
    ("重点关注", "under attention"),
];

/// Declares [`AnyRecord`] over every document type.
macro_rules! any_record {
    ($($variant:ident($ty:ty)),+ $(,)?) => {
        /// Any record, as stored: one variant per document type.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum AnyRecord {
            $(
                #[doc = concat!("A [`", stringify!($ty), "`].")]
                $variant($ty),
            )+
        }

        impl AnyRecord {
            /// The document id.
            pub fn id(&self) -> &str {
                match self { $(AnyRecord::$variant(r) => r.id()),+ }
            }
            /// The collection.
            pub fn collection(&self) -> Collection {
                match self { $(AnyRecord::$variant(_) => <$ty as Record>::COLLECTION),+ }
            }
            /// The replication scope.
            pub fn scope(&self) -> &Scope {
                match self { $(AnyRecord::$variant(r) => r.scope()),+ }
            }
            /// A one-line summary.
            pub fn title(&self) -> String {
                match self { $(AnyRecord::$variant(r) => r.title()),+ }
            }
            /// Validates the record on its own.
            pub fn validate(&self, today: Day) -> Result<(), ValidationErrors> {
                match self { $(AnyRecord::$variant(r) => r.validate(today)),+ }
            }
            /// Moves the record to another community (import into a store).
            pub fn set_community(&mut self, community: &str) {
                match self { $(AnyRecord::$variant(r) => r.scope.community = community.to_string()),+ }
            }
            /// Writes the record into the document that holds `old` (as hydrated from it),
            /// reading and writing only the fields that differ (see the `patch` module) for the records
            /// edited most; the others are reconciled whole.
            pub fn reconcile_changes(&self, old: &AnyRecord, doc: &mut automerge::AutoCommit) -> Result<(), autosurgeon::ReconcileError> {
                match (old, self) {
                    (AnyRecord::Household(o), AnyRecord::Household(n)) => patch::household(doc, o, n),
                    (AnyRecord::Sensitive(o), AnyRecord::Sensitive(n)) => patch::sensitive(doc, o, n),
                    (AnyRecord::Task(o), AnyRecord::Task(n)) => patch::task(doc, o, n),
                    _ => self.reconcile_into(doc),
                }
            }
            /// Writes the record into an Automerge document (a minimal diff when the document
            /// already holds an earlier version).
            pub fn reconcile_into(&self, doc: &mut automerge::AutoCommit) -> Result<(), autosurgeon::ReconcileError> {
                match self { $(AnyRecord::$variant(r) => autosurgeon::reconcile(doc, r)),+ }
            }
            /// Reads a record of `collection` from an Automerge document.
            pub fn hydrate_from(collection: Collection, doc: &automerge::AutoCommit) -> Result<AnyRecord, autosurgeon::HydrateError> {
                Ok(match collection {
                    $(c if c == <$ty as Record>::COLLECTION => AnyRecord::$variant(autosurgeon::hydrate(doc)?),)+
                    other => return Err(autosurgeon::HydrateError::unexpected(
                        "a stored collection", other.code().to_string())),
                })
            }
            /// Parses a record of `collection` from JSON bytes (in one pass, without building a
            /// `serde_json::Value` first).
            pub fn from_json_slice(collection: Collection, bytes: &[u8]) -> Result<AnyRecord, serde_json::Error> {
                Ok(match collection {
                    $(c if c == <$ty as Record>::COLLECTION => AnyRecord::$variant(serde_json::from_slice(bytes)?),)+
                    other => return Err(serde::de::Error::custom(format!("{} is not a document collection", other.code()))),
                })
            }
            /// Parses the JSON of a record of `collection`.
            pub fn from_json(collection: Collection, value: serde_json::Value) -> Result<AnyRecord, serde_json::Error> {
                Ok(match collection {
                    $(c if c == <$ty as Record>::COLLECTION => AnyRecord::$variant(serde_json::from_value(value)?),)+
                    other => return Err(serde::de::Error::custom(format!("{} is not a document collection", other.code()))),
                })
            }
        }
    };
}

any_record! {
    Community(Community),
    Household(Household),
    Sensitive(Sensitive),
    Organisation(Organisation),
    Visit(Visit),
    Task(Task),
    Request(ServiceRequest),
    Post(HelpPost),
    Notice(Notice),
    Ballot(Ballot),
}

/// Today's date in China Standard Time.
pub fn today() -> Day {
    Timestamp::now().day()
}
