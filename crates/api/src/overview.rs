//! The staff overview: households, people by attention tag, visits this month per grid, open
//! and overdue requests, task progress.

use chrono::Datelike;
use linli_domain::Day;
use linli_store::screens::Counts;
use serde::Serialize;

use crate::roster::day_start_ms;
use crate::{Api, ApiError};

/// The overview's numbers (each chart clicks through to a filtered list in the app).
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// First day of the month the visits are counted from.
    pub month_start: Day,
    /// Open requests (not closed, rejected or verified).
    pub open_requests: i64,
}

impl Api {
    /// The overview, as of now (the month in China Standard Time).
    pub fn overview(&self) -> Result<Overview, ApiError> {
        let now = self.now();
        let today = now.day();
        let month_start = Day::ymd(today.0.year(), today.0.month(), 1).unwrap_or(today);
        let store = self.store();
        self.community(&store)?;
        let counts = store.counts_for_overview(day_start_ms(month_start), now.0)?;
        let open_requests = counts
            .requests
            .iter()
            .filter(|(state, _)| {
                linli_domain::RequestState::parse(state).is_none_or(|s| s.is_open())
            })
            .map(|(_, n)| n)
            .sum();
        Ok(Overview {
            counts,
            month_start,
            open_requests,
        })
    }
}
