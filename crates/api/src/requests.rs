//! Service requests (居民诉求 → 工单): the closed loop of `domain.md` — report, accept,
//! dispatch, handle, finish, verify, close — with returns, rejections, reopening, deadlines
//! per category, reminders, satisfaction, and settling a conflict when two devices moved a
//! request differently (both steps stay in its history).

use linli_domain::request::{Event, EventKind, Satisfaction, default_categories};
use linli_domain::{AnyRecord, LoopStatus, RequestState, Scope, ServiceRequest};
use linli_store::Store;
use serde::{Deserialize, Serialize};

use crate::permissions::Action;
use crate::views::{LoopView, RequestInfo};
use crate::{Api, ApiError, new_id, required, save};

/// Which requests to list.
#[derive(Debug, Clone, Default, Deserialize, specta::Type)]
#[serde(default)]
pub struct RequestQuery {
    /// Only this state code (`conflict` for requests in conflict).
    pub state: Option<String>,
    /// Only this grid (community-wide requests included).
    pub grid: Option<String>,
    /// Only open requests.
    pub open: bool,
    /// Only open requests past their deadline.
    pub overdue: bool,
}

/// A request in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct RequestRow {
    /// Id.
    pub id: String,
    /// 网格.
    pub grid: Option<String>,
    /// Title.
    pub title: String,
    /// Its state, or `conflict`.
    pub state: RowState,
    /// Reported at (ms).
    pub created: i64,
    /// Deadline of an open request (ms).
    pub deadline: Option<i64>,
    /// Open and past its deadline.
    pub overdue: bool,
    /// The household it concerns.
    pub household: Option<String>,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A request page.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct RequestView {
    /// The request with its whole history of steps and events.
    pub request: RequestInfo,
    /// Where it stands: one state, or competing branches.
    pub status: LoopView,
    /// The states it may move to now (none while in conflict).
    pub next: Vec<RequestState>,
    /// The deadline after extensions (ms).
    pub deadline: i64,
    /// Open and past its deadline.
    pub overdue: bool,
    /// The category's name.
    pub category_name: String,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A request's state in a list: one state, or `conflict` (devices moved it differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(untagged)]
pub enum RowState {
    /// One state.
    State(RequestState),
    /// In conflict.
    Conflict(Conflicted),
}

/// The code of a request in conflict: `conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
pub enum Conflicted {
    /// `conflict`.
    #[serde(rename = "conflict")]
    Conflict,
}

impl RowState {
    /// Reads the state column of the derived tables: a state code, or `conflict`. (They are
    /// written from documents this version read, so every code is known; anything else is
    /// shown as a conflict, which asks a person to look.)
    fn parse(s: &str) -> RowState {
        RequestState::parse(s).map_or(RowState::Conflict(Conflicted::Conflict), RowState::State)
    }

    /// The code (`accepted`, `conflict`).
    pub fn code(self) -> &'static str {
        match self {
            RowState::State(s) => s.code(),
            RowState::Conflict(_) => "conflict",
        }
    }
}

/// Why a request needs attention now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    /// Past its deadline (逾期).
    Overdue,
    /// Less than a quarter of its time left (即将到期).
    DueSoon,
}

/// 提醒 An open request to remind the user of, once per device and deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct Reminder {
    /// The request.
    pub id: String,
    /// Its title.
    pub title: String,
    /// 网格.
    pub grid: Option<String>,
    /// Why.
    pub kind: ReminderKind,
    /// Its deadline (ms).
    pub deadline: i64,
}

/// Whether an open request reported at `created` with `deadline` needs a reminder at `now`.
pub fn reminder_kind(created: i64, deadline: i64, now: i64) -> Option<ReminderKind> {
    if deadline < now {
        Some(ReminderKind::Overdue)
    } else if (deadline - now).saturating_mul(4) < deadline.saturating_sub(created) {
        Some(ReminderKind::DueSoon)
    } else {
        None
    }
}

/// A request to report.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewRequest {
    /// What is wrong.
    pub title: String,
    /// Details.
    #[serde(default)]
    pub description: String,
    /// Category code (its deadline follows).
    pub category: String,
    /// The household it concerns (its grid becomes the request's).
    #[serde(default)]
    pub household: Option<String>,
    /// Who reported it.
    #[serde(default)]
    pub reporter_name: String,
    /// The grid, when no household is given (none: community-wide).
    #[serde(default)]
    pub grid: Option<String>,
}

fn load(store: &Store, id: &str) -> Result<ServiceRequest, ApiError> {
    match store.get(id)? {
        Some(AnyRecord::Request(r)) => Ok(r),
        _ => Err(ApiError::NotFound {
            kind: "service request",
            id: id.to_string(),
        }),
    }
}

impl Api {
    /// Requests, newest first, filtered.
    pub fn requests(&self, q: &RequestQuery) -> Result<Vec<RequestRow>, ApiError> {
        let now = self.now().0;
        let store = self.store();
        let pending = self.pending_ids(&store, &["requests"])?;
        let rows = store.records("requests", q.grid.as_deref(), None)?;
        Ok(rows
            .into_iter()
            .map(|r| RequestRow {
                overdue: r.due.is_some_and(|d| d < now),
                unsynced: pending.contains(&r.id),
                created: r.sort.parse().unwrap_or(0),
                deadline: r.due,
                household: r.household,
                id: r.id,
                grid: r.grid,
                title: r.title,
                state: RowState::parse(&r.status),
            })
            .filter(|r| q.state.as_ref().is_none_or(|s| r.state.code() == s))
            .filter(|r| !q.open || r.deadline.is_some())
            .filter(|r| !q.overdue || r.overdue)
            .collect())
    }

    /// The open requests that became overdue or nearly due since this device last asked
    /// (each once per deadline: an extended deadline reminds again), most urgent first. For
    /// the roles that handle requests (staff, grid workers); none for others.
    pub fn reminders(&self) -> Result<Vec<Reminder>, ApiError> {
        if !self.role(&self.store())?.may_edit_roster {
            return Ok(Vec::new());
        }
        let now = self.now().0;
        let due: Vec<(String, Reminder)> = self
            .requests(&RequestQuery {
                open: true,
                ..RequestQuery::default()
            })?
            .into_iter()
            .filter_map(|r| {
                let deadline = r.deadline?;
                let kind = reminder_kind(r.created, deadline, now)?;
                let key = format!("{}|{kind:?}|{deadline}", r.id);
                Some((
                    key,
                    Reminder {
                        id: r.id,
                        title: r.title,
                        grid: r.grid,
                        kind,
                        deadline,
                    },
                ))
            })
            .collect();
        let store = self.store();
        let shown = store.reminded()?;
        let keys: std::collections::BTreeSet<String> = due.iter().map(|(k, _)| k.clone()).collect();
        // Asked every minute: written only when the set changed.
        if keys != shown {
            store.set_reminded(&keys)?;
        }
        let mut fresh: Vec<Reminder> = due
            .into_iter()
            .filter(|(k, _)| !shown.contains(k))
            .map(|(_, r)| r)
            .collect();
        fresh.sort_by_key(|r| r.deadline);
        Ok(fresh)
    }

    /// One request with where it stands and what may come next.
    pub fn request(&self, id: &str) -> Result<RequestView, ApiError> {
        let store = self.store();
        self.request_view(&store, load(&store, id)?)
    }

    fn request_view(&self, store: &Store, r: ServiceRequest) -> Result<RequestView, ApiError> {
        let status = r.status();
        let next = match &status {
            LoopStatus::Settled { state, .. } => state.next().to_vec(),
            LoopStatus::Conflict { .. } => Vec::new(),
        };
        let category_name = store
            .community()?
            .request_categories
            .into_iter()
            .chain(default_categories())
            .find(|c| c.code == r.category)
            .map(|c| c.name)
            .unwrap_or_else(|| r.category.clone());
        let unsynced = self.unsynced(store, &[&r.id])?;
        Ok(RequestView {
            overdue: r.is_overdue(self.now()),
            deadline: r.current_deadline().0,
            status: LoopView::from(&status),
            next,
            category_name,
            unsynced,
            request: RequestInfo::from(&r),
        })
    }

    /// Reports a new request; returns its id.
    pub fn report_request(&self, input: &NewRequest) -> Result<String, ApiError> {
        let mut store = self.store();
        let community = self.community(&store)?;
        let title = required("title", &input.title)?;
        let category = community
            .request_categories
            .iter()
            .cloned()
            .chain(default_categories())
            .find(|c| c.code == input.category)
            .ok_or_else(|| {
                ApiError::invalid(
                    "category",
                    format!("`{}` is not a request category", input.category),
                )
            })?;
        let household = match input.household.as_deref().filter(|h| !h.trim().is_empty()) {
            Some(h) => Some(store.household(h)?.ok_or_else(|| ApiError::NotFound {
                kind: "household",
                id: h.to_string(),
            })?),
            None => None,
        };
        let scope = match (&household, input.grid.as_deref().filter(|g| !g.is_empty())) {
            (Some((h, _)), _) => h.scope.clone(),
            (None, Some(g)) => Scope::grid(&community.id, g),
            (None, None) => Scope::community(&community.id),
        };
        let id = new_id("rq")?;
        let user = store.author().user.clone();
        let mut r = ServiceRequest::report(
            &id,
            scope,
            title,
            &category,
            &user,
            self.now(),
            &new_id("s")?,
        );
        r.description = input.description.trim().to_string();
        r.reporter_name = input.reporter_name.trim().to_string();
        r.household = household.map(|(h, _)| h.id);
        save(
            &mut store,
            vec![AnyRecord::Request(r)],
            "report request",
            self.today(),
        )?;
        Ok(id)
    }

    /// Moves a request to `to` (a reason is required for rejecting, returning, reopening).
    pub fn advance_request(
        &self,
        id: &str,
        to: RequestState,
        comment: &str,
    ) -> Result<RequestView, ApiError> {
        let mut store = self.store();
        self.require(&store, Action::Step(to))?;
        let mut r = load(&store, id)?;
        let user = store.author().user.clone();
        r.advance(to, &user, self.now(), comment.trim(), &new_id("s")?)?;
        save(
            &mut store,
            vec![AnyRecord::Request(r.clone())],
            &format!("request → {}", to.code()),
            self.today(),
        )?;
        self.request_view(&store, r)
    }

    /// Settles a conflict by keeping branch `keep`; the other branch stays in the history.
    pub fn settle_request(
        &self,
        id: &str,
        keep: &str,
        comment: &str,
    ) -> Result<RequestView, ApiError> {
        let mut store = self.store();
        self.require(&store, Action::HandleRequest)?;
        let mut r = load(&store, id)?;
        let user = store.author().user.clone();
        r.settle(keep, &user, self.now(), comment.trim(), &new_id("s")?)?;
        save(
            &mut store,
            vec![AnyRecord::Request(r.clone())],
            "settle request conflict",
            self.today(),
        )?;
        self.request_view(&store, r)
    }

    /// Records the resident's satisfaction with a closed request.
    pub fn rate_request(
        &self,
        id: &str,
        satisfaction: Satisfaction,
    ) -> Result<RequestView, ApiError> {
        let mut store = self.store();
        self.require(&store, Action::HandleRequest)?;
        let mut r = load(&store, id)?;
        r.satisfaction = Some(satisfaction);
        save(
            &mut store,
            vec![AnyRecord::Request(r.clone())],
            "request satisfaction",
            self.today(),
        )?;
        self.request_view(&store, r)
    }

    /// Sends a reminder (催办) on an open request.
    pub fn remind_request(&self, id: &str, comment: &str) -> Result<RequestView, ApiError> {
        let mut store = self.store();
        self.require(&store, Action::Manage)?;
        let mut r = load(&store, id)?;
        if !r.state().is_none_or(RequestState::is_open) {
            return Err(ApiError::invalid("state", "the request is no longer open"));
        }
        let user = store.author().user.clone();
        r.events.push(Event {
            id: new_id("e")?,
            kind: EventKind::Remind,
            by: user,
            at: self.now(),
            new_deadline: None,
            comment: comment.trim().to_string(),
        });
        save(
            &mut store,
            vec![AnyRecord::Request(r.clone())],
            "request reminder",
            self.today(),
        )?;
        self.request_view(&store, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_due_soon_in_its_last_quarter_and_overdue_after() {
        let h = 3_600_000;
        // Reported at 0 with 24 h: due soon from 18 h, overdue after 24 h.
        assert_eq!(reminder_kind(0, 24 * h, 17 * h), None);
        assert_eq!(
            reminder_kind(0, 24 * h, 19 * h),
            Some(ReminderKind::DueSoon)
        );
        assert_eq!(
            reminder_kind(0, 24 * h, 24 * h),
            Some(ReminderKind::DueSoon)
        );
        assert_eq!(
            reminder_kind(0, 24 * h, 25 * h),
            Some(ReminderKind::Overdue)
        );
        // Just reported: not yet.
        assert_eq!(reminder_kind(10 * h, 12 * h, 10 * h), None);
    }
}
