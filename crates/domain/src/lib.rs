//! Linli's domain model: the records a community committee keeps (the 一标三实 roster, visits,
//! inspection tasks, service requests, help posts, notices, owners' ballots), their validation
//! rules and workflows. No I/O: everything here is plain data and pure functions.
//!
//! Each record is one Automerge document. Types derive autosurgeon's [`Hydrate`] and
//! [`Reconcile`] (the document mapping) and serde (JSON for import, export and scripts); list
//! items carry `#[key]` so that concurrent edits merge per item. The main trait is [`Record`].
//!
//! A person is two documents: [`Person`] (name, household, relation, …) and [`Sensitive`] (ID
//! number, phone, attention tags, health), so that sensitive data can be encrypted and erased
//! on its own (see `ARCHITECTURE.md`). [`PersonRecord`] joins them for screens and edits.

pub mod ballot;
pub mod board;
pub mod mask;
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
    Residence, Sensitive, SensitiveFields, Tenure,
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
        /// 实有人口 people (their non-sensitive part)
        Person = ("people", "实有人口", "people"),
        /// a person's sensitive part: ID number, phone, attention tags, health
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

/// Where a record belongs, for partial replication: its community and, for records of one
/// grid (households, people, tasks, visits), that grid. `grid: None` = community-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Scope {
    /// 社区 community id
    pub community: String,
    /// 网格 grid id (`G01`), or none for community-wide records
    pub grid: Option<String>,
}

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
                $v.require("scope.community", &self.scope.community);
                let _ = $today;
                {
                    let $s = self;
                    let _ = $s;
                    $validate
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
