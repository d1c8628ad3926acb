//! The community-wide boards: neighbour help (邻里互助: offers and requests of help, replies,
//! claim and done) and notices (公告, with read confirmations per household).

use std::collections::BTreeMap;

use linli_domain::board::{PostKind, PostStatus, Reply};
use linli_domain::{AnyRecord, HelpPost, Notice, Scope, Timestamp};
use linli_store::Store;
use serde::Serialize;

use crate::views::{NoticeInfo, PostView};
use crate::{Api, ApiError, new_id, required, save};

/// A post or notice in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct BoardRow {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// A post's status (none for notices).
    pub status: Option<PostStatus>,
    /// Posted or published at (ms).
    pub at: i64,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A notice with how many households confirmed reading it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct NoticeView {
    /// The notice.
    pub notice: NoticeInfo,
    /// Households that confirmed reading.
    pub confirmed: usize,
    /// Households on this device.
    pub households: i64,
}

fn load_post(store: &Store, id: &str) -> Result<HelpPost, ApiError> {
    match store.get(id)? {
        Some(AnyRecord::Post(p)) => Ok(p),
        _ => Err(ApiError::NotFound {
            kind: "help post",
            id: id.to_string(),
        }),
    }
}

fn load_notice(store: &Store, id: &str) -> Result<Notice, ApiError> {
    match store.get(id)? {
        Some(AnyRecord::Notice(n)) => Ok(n),
        _ => Err(ApiError::NotFound {
            kind: "notice",
            id: id.to_string(),
        }),
    }
}

impl Api {
    fn board_rows(&self, collection: &str) -> Result<Vec<BoardRow>, ApiError> {
        let store = self.store();
        let pending = self.pending_ids(&store, &[collection])?;
        Ok(store
            .records(collection, None, None)?
            .into_iter()
            .map(|r| BoardRow {
                unsynced: pending.contains(&r.id),
                at: r.sort.parse().unwrap_or(0),
                id: r.id,
                title: r.title,
                status: PostStatus::parse(&r.status),
            })
            .collect())
    }

    /// Help posts, newest first.
    pub fn posts(&self) -> Result<Vec<BoardRow>, ApiError> {
        self.board_rows("posts")
    }

    /// One help post with its replies.
    pub fn post(&self, id: &str) -> Result<PostView, ApiError> {
        Ok(PostView::from(&load_post(&self.store(), id)?))
    }

    /// Posts an offer (`offer`) or request (`request`) of help; returns its id.
    pub fn create_post(&self, kind: PostKind, title: &str, body: &str) -> Result<String, ApiError> {
        let mut store = self.store();
        let community = self.community(&store)?;
        let id = new_id("post")?;
        let post = HelpPost {
            id: id.clone(),
            collection: linli_domain::Collection::Post,
            scope: Scope::community(&community.id),
            kind,
            title: required("title", title)?.to_string(),
            body: body.trim().to_string(),
            author: store.author().user.clone(),
            at: self.now(),
            status: PostStatus::Open,
            claimed_by: None,
            replies: Vec::new(),
        };
        save(
            &mut store,
            vec![AnyRecord::Post(post)],
            "help post",
            self.today(),
        )?;
        Ok(id)
    }

    /// Replies to a post.
    pub fn reply_post(&self, id: &str, body: &str) -> Result<PostView, ApiError> {
        let mut store = self.store();
        let mut post = load_post(&store, id)?;
        post.replies.push(Reply {
            id: new_id("r")?,
            author: store.author().user.clone(),
            at: self.now(),
            body: required("body", body)?.to_string(),
        });
        save(
            &mut store,
            vec![AnyRecord::Post(post.clone())],
            "reply",
            self.today(),
        )?;
        Ok(PostView::from(&post))
    }

    /// Claims an open post (认领), or marks a claimed one done (`done`).
    pub fn move_post(&self, id: &str, to: PostStatus) -> Result<PostView, ApiError> {
        let mut store = self.store();
        let mut post = load_post(&store, id)?;
        let user = store.author().user.clone();
        match (post.status, to) {
            (PostStatus::Open, PostStatus::Claimed) => post.claimed_by = Some(user),
            // Done: said by who asked or who helped.
            (PostStatus::Claimed, PostStatus::Done)
                if post.author == user || post.claimed_by.as_deref() == Some(user.as_str()) => {}
            (PostStatus::Open | PostStatus::Claimed, PostStatus::Withdrawn)
                if post.author == user => {}
            (from, to) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("a post cannot go from {} to {}", from.code(), to.code()),
                ));
            }
        }
        post.status = to;
        save(
            &mut store,
            vec![AnyRecord::Post(post.clone())],
            "help post status",
            self.today(),
        )?;
        Ok(PostView::from(&post))
    }

    /// Notices, newest first.
    pub fn notices(&self) -> Result<Vec<BoardRow>, ApiError> {
        self.board_rows("notices")
    }

    /// One notice with its read confirmations.
    pub fn notice(&self, id: &str) -> Result<NoticeView, ApiError> {
        let store = self.store();
        let notice = load_notice(&store, id)?;
        Ok(NoticeView {
            confirmed: notice.receipts.len(),
            households: store.household_count()?,
            notice: NoticeInfo::from(&notice),
        })
    }

    /// Publishes a notice (staff and owners' committee members); returns its id.
    pub fn publish_notice(
        &self,
        title: &str,
        body: &str,
        receipts_required: bool,
    ) -> Result<String, ApiError> {
        let mut store = self.store();
        self.require(&store, crate::permissions::Action::Publish)?;
        let community = self.community(&store)?;
        let id = new_id("notice")?;
        let notice = Notice {
            id: id.clone(),
            collection: linli_domain::Collection::Notice,
            scope: Scope::community(&community.id),
            title: required("title", title)?.to_string(),
            body: required("body", body)?.to_string(),
            author: store.author().user.clone(),
            published: self.now(),
            expires: None,
            receipts_required,
            receipts: BTreeMap::new(),
        };
        save(
            &mut store,
            vec![AnyRecord::Notice(notice)],
            "publish notice",
            self.today(),
        )?;
        Ok(id)
    }

    /// Records that a household confirmed reading a notice (已读回执), e.g. on a visit.
    pub fn confirm_read(&self, id: &str, household: &str) -> Result<NoticeView, ApiError> {
        {
            let mut store = self.store();
            self.roster_role(&store, "confirm that a household read a notice")?;
            let mut notice = load_notice(&store, id)?;
            if store.household(household)?.is_none() {
                return Err(ApiError::NotFound {
                    kind: "household",
                    id: household.to_string(),
                });
            }
            notice
                .receipts
                .entry(household.to_string())
                .or_insert_with(Timestamp::now);
            save(
                &mut store,
                vec![AnyRecord::Notice(notice)],
                "notice read",
                self.today(),
            )?;
        }
        self.notice(id)
    }
}
