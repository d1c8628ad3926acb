//! 权限 What each role may do, in one table for every operation of the API (the app and the
//! command line both come through here). A device's role bounds what any person signed in on
//! it may do; the relay bounds what it receives (scope keys).
//!
//! | action | committee staff | grid worker | owners' committee |
//! |---|---|---|---|
//! | read the roster (households, people, search) | ✓ | its grids | — |
//! | reveal an ID number or phone (logged) | ✓ | its grids | — |
//! | change the roster, record visits, check inspection items, confirm a notice was read | ✓ | its grids | — |
//! | manage: invite devices, create tasks, the overview, relay upkeep, device settings, remind (催办) | ✓ | — | — |
//! | publish notices | ✓ | — | ✓ |
//! | report a service request, post on the help board | ✓ | ✓ | ✓ |
//! | take a step of a request: accept, dispatch, reject, close, reopen | ✓ | — | — |
//! | take a step of a request: start handling, finish, verify, return | ✓ | ✓ | — |
//! | settle competing steps, record the resident's satisfaction | ✓ | ✓ | — |

use linli_domain::RequestState;
use linli_wire::Role;

/// An operation not every role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Browse the roster: households, people, search.
    ReadRoster,
    /// See an ID number or phone in full (each time logged).
    Reveal,
    /// Change the roster, record visits, check inspection items, confirm a notice was read.
    EditRoster,
    /// Invite devices, create tasks, the overview, relay upkeep, device settings, remind.
    Manage,
    /// Publish notices.
    Publish,
    /// Take this step of a service request.
    Step(RequestState),
    /// Settle competing steps of a request; record the resident's satisfaction.
    HandleRequest,
}

impl Action {
    /// What it is, for the message that refuses it.
    pub fn describe(self) -> String {
        match self {
            Action::ReadRoster => "see the roster".into(),
            Action::Reveal => "see ID numbers or phones in full".into(),
            Action::EditRoster => "change the roster".into(),
            Action::Manage => "do this (committee staff only)".into(),
            Action::Publish => "publish notices".into(),
            Action::Step(to) => format!("move a request to `{}` ({})", to.code(), to.zh()),
            Action::HandleRequest => "handle requests".into(),
        }
    }
}

/// Whether `role` may do `action`.
pub fn allows(role: Role, action: Action) -> bool {
    use RequestState as S;
    match (role, action) {
        (Role::Staff, _) => true,
        (
            Role::Grid,
            Action::ReadRoster | Action::Reveal | Action::EditRoster | Action::HandleRequest,
        ) => true,
        (Role::Grid, Action::Step(to)) => {
            matches!(to, S::InProgress | S::Done | S::Verified | S::Returned)
        }
        (Role::Grid, Action::Manage | Action::Publish) => false,
        (Role::Owners, Action::Publish) => true,
        (Role::Owners, _) => false,
    }
}

/// The role's name for messages.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Staff => "committee staff (社区工作人员)",
        Role::Grid => "grid worker (网格员)",
        Role::Owners => "owners' committee (业委会)",
    }
}
