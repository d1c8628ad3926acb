//! Queries behind the app's screens, answered from the derived tables alone (no document is
//! loaded): the roster tree, household lists with tags and last visits, a household's visits,
//! and the overview's counts.

use rusqlite::params;
use serde::Serialize;

use crate::{Store, StoreError};

/// A compound with its buildings and units, and how many households each holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompoundNode {
    /// 小区 name.
    pub name: String,
    /// Households.
    pub households: i64,
    /// 楼栋 buildings, in address order.
    pub buildings: Vec<BuildingNode>,
}

/// A building of a compound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Which households to list (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct HouseholdFilter {
    /// Only this compound.
    pub compound: Option<String>,
    /// Only this building (of the compound, if given).
    pub building: Option<String>,
    /// Only this unit.
    pub unit: Option<String>,
    /// Only this grid.
    pub grid: Option<String>,
    /// Only households with a member carrying this attention tag.
    pub tag: Option<String>,
    /// Only households with no visit at or after this instant (ms).
    pub not_visited_since: Option<i64>,
}

/// A household in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Tenure code.
    pub tenure: String,
    /// Members living here.
    pub members: i64,
    /// 户主 the head's name.
    pub head: String,
    /// Attention tags of its members.
    pub tags: Vec<String>,
    /// Latest visit (ms since the epoch).
    pub last_visit: Option<i64>,
    /// Changed on this device and not yet at the relay (filled in by the caller).
    pub unsynced: bool,
}

/// A record of another collection in a list (visits, requests, tasks …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRow {
    /// Record id.
    pub id: String,
    /// 网格 grid (none: community-wide).
    pub grid: Option<String>,
    /// Title.
    pub title: String,
    /// Status code (a request in conflict: `conflict`).
    pub status: String,
    /// Sort key: creation or visit time (ms) for requests and visits, due day for tasks.
    pub sort: String,
    /// Deadline (ms) of an open request or a task.
    pub due: Option<i64>,
    /// The household it concerns.
    pub household: Option<String>,
    /// A task's checklist progress: items checked, and all items.
    pub progress: Option<(u32, u32)>,
}

/// Counts for the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Households.
    pub households: i64,
    /// People living here.
    pub people: i64,
    /// People per attention tag, most first.
    pub tags: Vec<(String, i64)>,
    /// Per grid: households, and households visited since the given instant.
    pub visits: Vec<GridVisits>,
    /// Requests per status code.
    pub requests: Vec<(String, i64)>,
    /// Open requests past their deadline.
    pub overdue: i64,
    /// Tasks per grid: all, and done.
    pub tasks: Vec<GridTasks>,
}

/// Visits of one grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GridVisits {
    /// Grid.
    pub grid: String,
    /// Households in it.
    pub households: i64,
    /// Households visited (done) in the period.
    pub visited: i64,
}

/// Tasks of one grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GridTasks {
    /// Grid.
    pub grid: String,
    /// Tasks.
    pub tasks: i64,
    /// Done.
    pub done: i64,
}

impl Store {
    /// Compounds → buildings → units, with household counts.
    pub fn compounds(&self) -> Result<Vec<CompoundNode>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT compound, building, MIN(grid), COUNT(*), group_concat(DISTINCT unit)
             FROM q_households GROUP BY compound, building ORDER BY MIN(sort)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out: Vec<CompoundNode> = Vec::new();
        for row in rows {
            let (compound, building, grid, n, units) = row?;
            let mut units: Vec<String> = units.split(',').map(str::to_string).collect();
            units.sort_by_key(|u| crate::index::natural_key(u));
            if out.last().is_none_or(|c| c.name != compound) {
                out.push(CompoundNode {
                    name: compound,
                    households: 0,
                    buildings: Vec::new(),
                });
            }
            if let Some(c) = out.last_mut() {
                c.households += n;
                c.buildings.push(BuildingNode {
                    name: building,
                    grid,
                    households: n,
                    units,
                });
            }
        }
        Ok(out)
    }

    /// Households in address order, filtered.
    pub fn households(&self, f: &HouseholdFilter) -> Result<Vec<HouseholdRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT h.id, h.grid, h.compound, h.building, h.unit, h.room, h.tenure, h.members,
                    COALESCE(p.name, ''),
                    (SELECT group_concat(DISTINCT t.tag) FROM q_tags t WHERE t.doc = h.id || '.pii'),
                    (SELECT MAX(CAST(r.sort AS INTEGER)) FROM q_records r
                      WHERE r.ref = h.id AND r.collection = 'visits' AND r.status = 'done')
             FROM q_households h LEFT JOIN q_people p ON p.id = h.head AND p.household = h.id
             WHERE (?1 IS NULL OR h.compound = ?1) AND (?2 IS NULL OR h.building = ?2)
               AND (?3 IS NULL OR h.unit = ?3) AND (?4 IS NULL OR h.grid = ?4)
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM q_tags t
                                          WHERE t.doc = h.id || '.pii' AND t.tag = ?5))
             ORDER BY h.sort",
        )?;
        let rows = stmt.query_map(
            params![f.compound, f.building, f.unit, f.grid, f.tag],
            |r| {
                let tags: Option<String> = r.get(9)?;
                Ok(HouseholdRow {
                    id: r.get(0)?,
                    grid: r.get(1)?,
                    compound: r.get(2)?,
                    building: r.get(3)?,
                    unit: r.get(4)?,
                    room: r.get(5)?,
                    tenure: r.get(6)?,
                    members: r.get(7)?,
                    head: r.get(8)?,
                    tags: tags
                        .map(|t| t.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                    last_visit: r.get(10)?,
                    unsynced: false,
                })
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if let Some(since) = f.not_visited_since
                && row.last_visit.is_some_and(|v| v >= since)
            {
                continue;
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Records of `collection` (a `q_records` collection code), newest first, optionally only
    /// those concerning `household` or in `grid` (community-wide ones included).
    pub fn records(
        &self,
        collection: &str,
        grid: Option<&str>,
        household: Option<&str>,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, grid, title, status, sort, due, ref, progress FROM q_records
             WHERE collection = ?1 AND (?2 IS NULL OR grid = ?2 OR grid IS NULL)
               AND (?3 IS NULL OR ref = ?3)
             ORDER BY sort DESC, id",
        )?;
        let rows = stmt.query_map(params![collection, grid, household], |r| {
            Ok(RecordRow {
                id: r.get(0)?,
                grid: r.get(1)?,
                title: r.get(2)?,
                status: r.get(3)?,
                sort: r.get(4)?,
                due: r.get(5)?,
                household: r.get(6)?,
                progress: r.get::<_, Option<String>>(7)?.and_then(|p| {
                    let (a, b) = p.split_once('/')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                }),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The overview's counts; visits are counted from `visits_since` (ms), overdue at `now`.
    pub fn counts_for_overview(&self, visits_since: i64, now: i64) -> Result<Counts, StoreError> {
        let conn = self.conn();
        let pairs =
            |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<(String, i64)>, StoreError> {
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            };
        let tags = pairs(
            "SELECT t.tag, COUNT(DISTINCT t.person) FROM q_tags t
             JOIN q_people p ON p.id = t.person AND p.present = 1
             GROUP BY t.tag ORDER BY 2 DESC, 1",
            &[],
        )?;
        let requests = pairs(
            "SELECT status, COUNT(*) FROM q_records WHERE collection = 'requests'
             GROUP BY status ORDER BY 2 DESC",
            &[],
        )?;
        let mut stmt = conn.prepare_cached(
            "SELECT h.grid, COUNT(*),
                    SUM(EXISTS (SELECT 1 FROM q_records r WHERE r.ref = h.id
                                AND r.collection = 'visits' AND r.status = 'done'
                                AND CAST(r.sort AS INTEGER) >= ?1))
             FROM q_households h WHERE h.grid IS NOT NULL GROUP BY h.grid ORDER BY h.grid",
        )?;
        let visits = stmt
            .query_map([visits_since], |r| {
                Ok(GridVisits {
                    grid: r.get(0)?,
                    households: r.get(1)?,
                    visited: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT COALESCE(grid, '*'), COUNT(*), SUM(status = 'done') FROM q_records
             WHERE collection = 'tasks' GROUP BY grid ORDER BY grid",
        )?;
        let tasks = stmt
            .query_map([], |r| {
                Ok(GridTasks {
                    grid: r.get(0)?,
                    tasks: r.get(1)?,
                    done: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let overdue = conn.query_row(
            "SELECT COUNT(*) FROM q_records WHERE collection = 'requests' AND due < ?1",
            [now],
            |r| r.get(0),
        )?;
        Ok(Counts {
            households: self.household_count()?,
            people: self.count("SELECT COUNT(*) FROM q_people WHERE present = 1")?,
            tags,
            visits,
            requests,
            overdue,
            tasks,
        })
    }
}
