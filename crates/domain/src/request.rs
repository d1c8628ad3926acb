//! 居民诉求 → 工单: the closed loop of a service request (事件闭环).
//!
//! `reported 上报 → accepted 受理 → dispatched 派遣 → in_progress 处置 → done 办结待核查 →
//! verified 核查 → closed 结案`, with `rejected 不予受理` (reason required), `returned 退回`
//! (back to dispatch) and `reopened 重启` (a dissatisfied resident reopens a closed request).
//!
//! The steps are an append-only list; each step names the step it follows (`prev`). Two
//! devices that moved the same request offline each append a step after the same `prev`; the
//! merged document keeps both, and [`ServiceRequest::status`] reports the fork as a
//! [`LoopStatus::Conflict`] instead of silently picking one. A person settles it with
//! [`ServiceRequest::settle`], which appends a step that follows the chosen branch and names
//! the others in `merges`: both steps stay in the history.

use std::collections::HashSet;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::validate::Validator;
use crate::value::Timestamp;
use crate::{Collection, Scope, ValidationErrors, record_impl, str_enum};

str_enum! {
    /// 工单状态 the state of a service request in its loop
    pub enum RequestState {
        /// 上报
        Reported = ("reported", "上报", "reported"),
        /// 受理
        Accepted = ("accepted", "受理", "accepted"),
        /// 派遣
        Dispatched = ("dispatched", "派遣", "dispatched"),
        /// 处置
        InProgress = ("in_progress", "处置中", "in progress"),
        /// 办结待核查
        Done = ("done", "办结待核查", "done, to verify"),
        /// 核查
        Verified = ("verified", "已核查", "verified"),
        /// 结案
        Closed = ("closed", "结案", "closed"),
        /// 不予受理 (terminal, reason required)
        Rejected = ("rejected", "不予受理", "rejected"),
        /// 退回 back to dispatch
        Returned = ("returned", "退回", "returned"),
        /// 重启 reopened after an unsatisfied close
        Reopened = ("reopened", "重启", "reopened"),
    }
}

impl RequestState {
    /// The states the loop allows next.
    pub fn next(self) -> &'static [RequestState] {
        use RequestState::*;
        match self {
            Reported => &[Accepted, Rejected],
            Accepted => &[Dispatched, Rejected],
            Dispatched => &[InProgress, Returned],
            InProgress => &[Done, Returned],
            Done => &[Verified, Returned],
            Verified => &[Closed],
            Closed => &[Reopened],
            Rejected => &[],
            Returned => &[Dispatched, Rejected],
            Reopened => &[Dispatched],
        }
    }

    /// Whether the request still needs work (counts towards overdue).
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            RequestState::Closed | RequestState::Rejected | RequestState::Verified
        )
    }
}

str_enum! {
    /// 满意度
    pub enum Satisfaction {
        /// 满意
        Satisfied = ("satisfied", "满意", "satisfied"),
        /// 基本满意
        Fair = ("fair", "基本满意", "fairly satisfied"),
        /// 不满意
        Dissatisfied = ("dissatisfied", "不满意", "dissatisfied"),
    }
}

str_enum! {
    /// Events on a request that do not move it through the loop.
    pub enum EventKind {
        /// 催办 reminder
        Remind = ("remind", "催办", "reminder"),
        /// 延期 extension (asked before the deadline)
        Extend = ("extend", "延期", "extension"),
        /// 备注
        Note = ("note", "备注", "note"),
    }
}

/// One step of the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Step {
    /// Step id, unique in the request (`<device>-<n>` or a random id).
    #[key]
    pub id: String,
    /// The step this one follows; `None` only for the first (`reported`).
    pub prev: Option<String>,
    /// Other branches this step settles (a conflict resolution); empty normally.
    pub merges: Vec<String>,
    /// The state the request is in after this step.
    pub to: RequestState,
    /// Who (worker or unit).
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Comment (the reason, for `rejected` and `returned`).
    pub comment: String,
}

/// A reminder, extension or note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Event {
    /// Event id.
    #[key]
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// Who.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// For an extension: the new deadline.
    pub new_deadline: Option<Timestamp>,
    /// Comment.
    pub comment: String,
}

/// 居民诉求 a service request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct ServiceRequest {
    /// Request id.
    pub id: String,
    /// Always [`Collection::Request`].
    pub collection: Collection,
    /// Community and grid.
    pub scope: Scope,
    /// 标题
    pub title: String,
    /// 描述
    pub description: String,
    /// Category code (see the community's request categories).
    pub category: String,
    /// The reporting resident's person id, when on the roster (contact details stay in the
    /// person's sensitive document).
    pub reporter: Option<String>,
    /// The reporter's name as given (for residents not on the roster).
    pub reporter_name: String,
    /// The household concerned, if any.
    pub household: Option<String>,
    /// 首接单位 the unit that first received it and owns it (首接负责制).
    pub owner_unit: String,
    /// The unit currently handling it.
    pub assignee: String,
    /// When it was reported.
    pub created: Timestamp,
    /// 处置时限
    pub deadline: Timestamp,
    /// The loop, append-only.
    pub steps: Vec<Step>,
    /// Reminders, extensions, notes.
    pub events: Vec<Event>,
    /// 满意度, recorded on closing.
    pub satisfaction: Option<Satisfaction>,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoopStatus {
    /// One current state.
    Settled {
        /// The state.
        state: RequestState,
        /// The step that put it there.
        step: String,
    },
    /// Devices moved the request differently: the current steps of each branch.
    Conflict {
        /// The competing steps (their ids), oldest first.
        branches: Vec<Step>,
    },
}

/// Why a step could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The request has competing branches; settle first.
    #[error("the request has a conflict between steps {0}; settle it first")]
    Conflict(String),
    /// The loop does not allow this move.
    #[error("cannot go from {from} ({from_zh}) to {to} ({to_zh}); allowed: {allowed}")]
    NotAllowed {
        /// current state
        from: RequestState,
        /// Chinese label
        from_zh: &'static str,
        /// asked state
        to: RequestState,
        /// Chinese label
        to_zh: &'static str,
        /// allowed next states
        allowed: String,
    },
    /// A reason is required.
    #[error("a reason (comment) is required to move a request to {0}")]
    ReasonRequired(RequestState),
    /// Settling names a step that is not a current branch.
    #[error("step {0} is not one of the competing branches")]
    NotABranch(String),
    /// Nothing to settle.
    #[error("the request has no conflict to settle")]
    NoConflict,
}

impl ServiceRequest {
    /// A newly reported request: one `reported` step, the deadline from its category.
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        id: &str,
        scope: Scope,
        title: &str,
        category: &RequestCategory,
        by: &str,
        at: Timestamp,
        step_id: &str,
    ) -> ServiceRequest {
        ServiceRequest {
            id: id.to_string(),
            collection: Collection::Request,
            scope,
            title: title.to_string(),
            description: String::new(),
            category: category.code.clone(),
            reporter: None,
            reporter_name: String::new(),
            household: None,
            owner_unit: by.to_string(),
            assignee: String::new(),
            created: at,
            deadline: Timestamp(at.0 + i64::from(category.deadline_hours) * 3_600_000),
            steps: vec![Step {
                id: step_id.to_string(),
                prev: None,
                merges: vec![],
                to: RequestState::Reported,
                by: by.to_string(),
                at,
                comment: String::new(),
            }],
            events: vec![],
            satisfaction: None,
        }
    }

    /// Steps that no later step follows or settles: one when the loop is linear.
    pub fn heads(&self) -> Vec<&Step> {
        let followed: HashSet<&str> = self
            .steps
            .iter()
            .flat_map(|s| s.prev.iter().chain(s.merges.iter()))
            .map(String::as_str)
            .collect();
        let mut heads: Vec<&Step> = self
            .steps
            .iter()
            .filter(|s| !followed.contains(s.id.as_str()))
            .collect();
        heads.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        heads
    }

    /// Where the request stands: settled in one state, or in conflict.
    pub fn status(&self) -> LoopStatus {
        let heads = self.heads();
        match heads.as_slice() {
            [one] => LoopStatus::Settled {
                state: one.to,
                step: one.id.clone(),
            },
            [] => LoopStatus::Settled {
                state: RequestState::Reported,
                step: String::new(),
            },
            many => LoopStatus::Conflict {
                branches: many.iter().map(|s| (*s).clone()).collect(),
            },
        }
    }

    /// The current state, `None` while in conflict.
    pub fn state(&self) -> Option<RequestState> {
        match self.status() {
            LoopStatus::Settled { state, .. } => Some(state),
            LoopStatus::Conflict { .. } => None,
        }
    }

    /// Moves the request to `to`, appending a step after the current one.
    pub fn advance(
        &mut self,
        to: RequestState,
        by: &str,
        at: Timestamp,
        comment: &str,
        step_id: &str,
    ) -> Result<(), StepError> {
        let (from, prev) = match self.status() {
            LoopStatus::Settled { state, step } => (state, step),
            LoopStatus::Conflict { branches } => {
                return Err(StepError::Conflict(
                    branches
                        .iter()
                        .map(|b| b.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        };
        if !from.next().contains(&to) {
            return Err(StepError::NotAllowed {
                from,
                from_zh: from.zh(),
                to,
                to_zh: to.zh(),
                allowed: from
                    .next()
                    .iter()
                    .map(|s| s.code())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if matches!(
            to,
            RequestState::Rejected | RequestState::Returned | RequestState::Reopened
        ) && comment.trim().is_empty()
        {
            return Err(StepError::ReasonRequired(to));
        }
        self.steps.push(Step {
            id: step_id.to_string(),
            prev: (!prev.is_empty()).then_some(prev),
            merges: vec![],
            to,
            by: by.to_string(),
            at,
            comment: comment.to_string(),
        });
        Ok(())
    }

    /// Settles a conflict by keeping branch `keep`: appends a step in `keep`'s state that
    /// follows it and names the other branches. Nothing is removed from the history.
    pub fn settle(
        &mut self,
        keep: &str,
        by: &str,
        at: Timestamp,
        comment: &str,
        step_id: &str,
    ) -> Result<(), StepError> {
        let branches = match self.status() {
            LoopStatus::Conflict { branches } => branches,
            LoopStatus::Settled { .. } => return Err(StepError::NoConflict),
        };
        let kept = branches
            .iter()
            .find(|b| b.id == keep)
            .ok_or_else(|| StepError::NotABranch(keep.to_string()))?;
        self.steps.push(Step {
            id: step_id.to_string(),
            prev: Some(kept.id.clone()),
            merges: branches
                .iter()
                .filter(|b| b.id != keep)
                .map(|b| b.id.clone())
                .collect(),
            to: kept.to,
            by: by.to_string(),
            at,
            comment: comment.to_string(),
        });
        Ok(())
    }

    /// Whether the deadline has passed while the request is still open.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        let deadline = self.current_deadline();
        self.state().is_none_or(RequestState::is_open) && now > deadline
    }

    /// The deadline after any extensions.
    pub fn current_deadline(&self) -> Timestamp {
        self.events
            .iter()
            .filter(|e| e.kind == EventKind::Extend)
            .filter_map(|e| e.new_deadline)
            .fold(self.deadline, Timestamp::max)
    }

    fn validate_steps(&self, v: &mut Validator) {
        let mut ids = HashSet::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !ids.insert(s.id.as_str()) {
                v.error(&format!("steps[{i}].id"), "is used twice");
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            let field = format!("steps[{i}]");
            match &s.prev {
                None if s.to != RequestState::Reported => {
                    v.error(&field, "only the first step (reported) may follow no step")
                }
                None => {}
                Some(prev) => match self.steps.iter().find(|p| &p.id == prev) {
                    None => v.error(&format!("{field}.prev"), format!("names no step ({prev})")),
                    Some(p) => {
                        let settles = !s.merges.is_empty() && s.to == p.to;
                        if !settles && !p.to.next().contains(&s.to) {
                            v.error(
                                &format!("{field}.to"),
                                format!(
                                    "the loop does not go from {} to {}",
                                    p.to.code(),
                                    s.to.code()
                                ),
                            );
                        }
                    }
                },
            }
            for m in &s.merges {
                if !ids.contains(m.as_str()) {
                    v.error(&format!("{field}.merges"), format!("names no step ({m})"));
                }
            }
            if s.to == RequestState::Rejected && s.comment.trim().is_empty() {
                v.error(&format!("{field}.comment"), "a rejection needs a reason");
            }
        }
    }
}

record_impl!(
    ServiceRequest,
    Collection::Request,
    |s| s.title.clone(),
    |v, _today| {
        v.require("title", &s.title);
        v.require("category", &s.category);
        if s.steps.is_empty() {
            v.error("steps", "a request has at least its reported step");
        }
        if s.deadline < s.created {
            v.error("deadline", "is before the request was reported");
        }
        s.validate_steps(&mut v);
        if s.satisfaction.is_some() && !s.steps.iter().any(|st| st.to == RequestState::Closed) {
            v.error("satisfaction", "is recorded when the request is closed");
        }
    }
);

/// A category of service requests with its deadline (处置时限).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct RequestCategory {
    /// Code, e.g. `utilities`.
    #[key]
    pub code: String,
    /// Display name, e.g. `水电气暖`.
    pub name: String,
    /// Hours from report to the deadline.
    pub deadline_hours: u32,
}

/// Request categories with the deadlines seen in practice.
pub fn default_categories() -> Vec<RequestCategory> {
    [
        ("emergency", "紧急事件", 2),
        ("utilities", "水电气暖", 24),
        ("environment", "环境卫生", 72),
        ("property", "物业服务", 120),
        ("neighbour", "邻里纠纷", 168),
        ("complex", "复杂事项", 360),
    ]
    .into_iter()
    .map(|(code, name, h)| RequestCategory {
        code: code.into(),
        name: name.into(),
        deadline_hours: h,
    })
    .collect()
}

/// Validates a request (a convenience for callers that only have the concrete type).
pub fn validate_request(r: &ServiceRequest, today: crate::Day) -> Result<(), ValidationErrors> {
    crate::Record::validate(r, today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;
    use autosurgeon::{hydrate, reconcile};

    fn request() -> ServiceRequest {
        let cat = &default_categories()[1];
        ServiceRequest::report(
            "rq-1",
            Scope::grid("c", "G01"),
            "楼道灯坏了",
            cat,
            "王芳",
            Timestamp(1_000_000),
            "s1",
        )
    }

    #[test]
    fn the_loop_allows_only_its_moves() {
        let mut r = request();
        r.advance(
            RequestState::Accepted,
            "居委会",
            Timestamp(2_000_000),
            "",
            "s2",
        )
        .unwrap();
        let e = r
            .advance(
                RequestState::Closed,
                "居委会",
                Timestamp(3_000_000),
                "",
                "s3",
            )
            .unwrap_err();
        assert!(matches!(e, StepError::NotAllowed { .. }), "{e}");
        let e = r
            .advance(
                RequestState::Rejected,
                "居委会",
                Timestamp(3_000_000),
                " ",
                "s3",
            )
            .unwrap_err();
        assert_eq!(e, StepError::ReasonRequired(RequestState::Rejected));
        for (i, to) in [
            RequestState::Dispatched,
            RequestState::InProgress,
            RequestState::Done,
            RequestState::Verified,
            RequestState::Closed,
        ]
        .into_iter()
        .enumerate()
        {
            r.advance(
                to,
                "物业",
                Timestamp(3_000_000 + i as i64),
                "",
                &format!("t{i}"),
            )
            .unwrap();
        }
        assert_eq!(r.state(), Some(RequestState::Closed));
        assert!(r.validate(crate::Day::ymd(2026, 1, 1).unwrap()).is_ok());
        assert_eq!(r.current_deadline(), Timestamp(1_000_000 + 24 * 3_600_000));
        assert!(
            !r.is_overdue(Timestamp(i64::MAX)),
            "a closed request is never overdue"
        );
    }

    #[test]
    fn concurrent_moves_merge_into_a_conflict_that_a_person_settles() {
        let mut base = request();
        base.advance(RequestState::Accepted, "居委会", Timestamp(2), "", "s2")
            .unwrap();
        base.advance(RequestState::Dispatched, "居委会", Timestamp(3), "", "s3")
            .unwrap();
        let mut doc_a = automerge::AutoCommit::new();
        reconcile(&mut doc_a, &base).unwrap();
        doc_a.commit();
        let mut doc_b = doc_a.fork().with_actor(automerge::ActorId::random());

        // Device A: the unit starts work. Device B, offline: the unit returns it.
        let mut a: ServiceRequest = hydrate(&doc_a).unwrap();
        a.advance(RequestState::InProgress, "物业", Timestamp(4), "", "a-1")
            .unwrap();
        reconcile(&mut doc_a, &a).unwrap();
        let mut b: ServiceRequest = hydrate(&doc_b).unwrap();
        b.advance(
            RequestState::Returned,
            "物业",
            Timestamp(5),
            "不属于物业职责",
            "b-1",
        )
        .unwrap();
        reconcile(&mut doc_b, &b).unwrap();

        doc_a.merge(&mut doc_b).unwrap();
        let mut merged: ServiceRequest = hydrate(&doc_a).unwrap();
        assert_eq!(merged.steps.len(), 5, "both steps are kept");
        let LoopStatus::Conflict { branches } = merged.status() else {
            panic!("expected a conflict")
        };
        assert_eq!(
            branches.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["a-1", "b-1"]
        );
        assert!(
            merged
                .validate(crate::Day::ymd(2026, 1, 1).unwrap())
                .is_ok(),
            "each branch is a legal move"
        );
        assert!(matches!(
            merged
                .advance(RequestState::Done, "x", Timestamp(6), "", "x")
                .unwrap_err(),
            StepError::Conflict(_)
        ));

        merged
            .settle("b-1", "社区主任", Timestamp(7), "退回重新派遣", "m-1")
            .unwrap();
        assert_eq!(merged.state(), Some(RequestState::Returned));
        merged
            .advance(RequestState::Dispatched, "居委会", Timestamp(8), "", "s9")
            .unwrap();
        assert_eq!(merged.state(), Some(RequestState::Dispatched));
        assert_eq!(
            merged.steps.len(),
            7,
            "history keeps both branches and the settlement"
        );
        assert!(
            merged
                .validate(crate::Day::ymd(2026, 1, 1).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn invalid_histories_are_reported_by_field() {
        let mut r = request();
        r.steps.push(Step {
            id: "bad".into(),
            prev: Some("s1".into()),
            merges: vec![],
            to: RequestState::Closed,
            by: "x".into(),
            at: Timestamp(9),
            comment: String::new(),
        });
        let e = r
            .validate(crate::Day::ymd(2026, 1, 1).unwrap())
            .unwrap_err();
        assert!(e.has("steps[1].to"), "{e}");
    }
}
