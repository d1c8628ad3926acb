//! The community-wide boards: neighbour help (邻里互助) and notices (公告).

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::value::{Day, Timestamp};
use crate::{Collection, Scope, record_impl, str_enum};

str_enum! {
    /// Offer or request of help.
    pub enum PostKind {
        /// 提供帮助
        Offer = ("offer", "提供帮助", "offer"),
        /// 求助
        Request = ("request", "求助", "request"),
    }
}

str_enum! {
    /// Where a help post stands.
    pub enum PostStatus {
        /// 待认领
        Open = ("open", "待认领", "open"),
        /// 已认领
        Claimed = ("claimed", "已认领", "claimed"),
        /// 已完成
        Done = ("done", "已完成", "done"),
        /// 已撤回
        Withdrawn = ("withdrawn", "已撤回", "withdrawn"),
    }
}

/// A reply to a help post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Reply {
    /// Reply id.
    #[key]
    pub id: String,
    /// Who.
    pub author: String,
    /// When.
    pub at: Timestamp,
    /// Text.
    pub body: String,
}

/// 邻里互助 a help post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct HelpPost {
    /// Post id.
    pub id: String,
    /// Always [`Collection::Post`].
    pub collection: Collection,
    /// Community-wide scope.
    pub scope: Scope,
    /// Offer or request.
    pub kind: PostKind,
    /// 标题
    pub title: String,
    /// 内容
    pub body: String,
    /// Who posted.
    pub author: String,
    /// When.
    pub at: Timestamp,
    /// Status.
    pub status: PostStatus,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// Replies.
    pub replies: Vec<Reply>,
}

record_impl!(
    HelpPost,
    Collection::Post,
    |s| s.title.clone(),
    |v, _today| {
        v.require("title", &s.title);
        v.require("author", &s.author);
        if matches!(s.status, PostStatus::Claimed | PostStatus::Done) && s.claimed_by.is_none() {
            v.error("claimed_by", "is required once a post is claimed");
        }
    }
);

/// 公告 a notice, optionally with read confirmations (已读回执).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Notice {
    /// Notice id.
    pub id: String,
    /// Always [`Collection::Notice`].
    pub collection: Collection,
    /// Community-wide (or one grid's) scope.
    pub scope: Scope,
    /// 标题
    pub title: String,
    /// 正文
    pub body: String,
    /// 发布人 (committee or owners' committee)
    pub author: String,
    /// 发布时间
    pub published: Timestamp,
    /// Until when it is shown.
    pub expires: Option<Day>,
    /// Whether households are asked to confirm reading.
    pub receipts_required: bool,
    /// Read confirmations: household id → when (a map, so concurrent confirmations merge).
    pub receipts: BTreeMap<String, Timestamp>,
}

record_impl!(
    Notice,
    Collection::Notice,
    |s| s.title.clone(),
    |v, _today| {
        v.require("title", &s.title);
        v.require("body", &s.body);
        v.require("author", &s.author);
        if let Some(e) = s.expires
            && e < s.published.day()
        {
            v.error("expires", "is before the notice was published");
        }
    }
);
