//! The staff overview: households, people by attention tag, visits this month per grid, open
//! and overdue requests, task progress.

use chrono::Datelike;
use linli_domain::Day;
use linli_store::screens::Counts;
use serde::Serialize;

use crate::roster::day_start_ms;
use crate::{Api, ApiError};

/// The overview's numbers (each chart clicks through to a filtered list in the app).
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct Overview {
    /// Households.
    pub households: i64,
    /// People living here.
    pub people: i64,
    /// People per attention tag, most first.
    pub tags: Vec<(String, i64)>,
    /// Per grid: households, and households visited this month.
    pub visits: Vec<GridVisits>,
    /// Requests per state code (`conflict` for those in conflict).
    pub requests: Vec<(String, i64)>,
    /// Open requests past their deadline.
    pub overdue: i64,
    /// Tasks per grid: all, and done.
    pub tasks: Vec<GridTasks>,
    /// First day of the month the visits are counted from.
    pub month_start: Day,
    /// Open requests (not closed, rejected or verified).
    pub open_requests: i64,
}

/// Visits of one grid this month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct GridVisits {
    /// Grid.
    pub grid: String,
    /// Households in it.
    pub households: i64,
    /// Households visited (done) this month.
    pub visited: i64,
}

/// Tasks of one grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct GridTasks {
    /// Grid.
    pub grid: String,
    /// Tasks.
    pub tasks: i64,
    /// Done.
    pub done: i64,
}

impl Api {
    /// The overview, as of now (the month in China Standard Time).
    pub fn overview(&self) -> Result<Overview, ApiError> {
        let now = self.now();
        let today = now.day();
        let month_start = Day::ymd(today.0.year(), today.0.month(), 1).unwrap_or(today);
        let store = self.store();
        self.require(&store, crate::permissions::Action::Manage)?;
        let counts = store.counts_for_overview(day_start_ms(month_start), now.0)?;
        let open_requests = counts
            .requests
            .iter()
            .filter(|(state, _)| {
                linli_domain::RequestState::parse(state).is_none_or(|s| s.is_open())
            })
            .map(|(_, n)| n)
            .sum();
        let Counts {
            households,
            people,
            tags,
            visits,
            requests,
            overdue,
            tasks,
        } = counts;
        Ok(Overview {
            households,
            people,
            tags,
            visits: visits
                .into_iter()
                .map(|v| GridVisits {
                    grid: v.grid,
                    households: v.households,
                    visited: v.visited,
                })
                .collect(),
            requests,
            overdue,
            tasks: tasks
                .into_iter()
                .map(|t| GridTasks {
                    grid: t.grid,
                    tasks: t.tasks,
                    done: t.done,
                })
                .collect(),
            month_start,
            open_requests,
        })
    }
}
