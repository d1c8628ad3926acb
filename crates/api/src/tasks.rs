//! Inspection tasks (巡查任务): staff create them from the checklist templates of the common
//! hazards and assign them; a grid worker ticks items (passed or failed) with notes and turns
//! a failed item into a service request; progress per task and per grid.

use linli_domain::request::default_categories;
use linli_domain::work::{ChecklistItem, TEMPLATES, TaskStatus};
use linli_domain::{AnyRecord, Day, Scope, ServiceRequest, Task};
use linli_store::Store;
use serde::{Deserialize, Serialize};

use crate::roster::parse_day;
use crate::views::TaskInfo;
use crate::{Api, ApiError, new_id, required, save};

/// A checklist template.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct Template {
    /// Its name (the task's kind).
    pub name: &'static str,
    /// Its items.
    pub items: Vec<&'static str>,
}

/// A task in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct TaskRow {
    /// Id.
    pub id: String,
    /// 网格.
    pub grid: Option<String>,
    /// Title.
    pub title: String,
    /// Status.
    pub status: TaskStatus,
    /// Due day, `YYYY-MM-DD` (empty: none).
    pub due: String,
    /// Past its due day and not done.
    pub overdue: bool,
    /// Items checked.
    pub checked: u32,
    /// All items.
    pub items: u32,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A task page.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TaskView {
    /// The task with its checklist.
    pub task: TaskInfo,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A task to create.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewTask {
    /// The template's name.
    pub template: String,
    /// 小区.
    pub compound: String,
    /// 楼栋.
    pub building: String,
    /// Due day, `YYYY-MM-DD`.
    #[serde(default)]
    pub due: Option<String>,
    /// Assigned worker (default: the grid's worker).
    #[serde(default)]
    pub assignee: String,
}

fn load(store: &Store, id: &str) -> Result<Task, ApiError> {
    match store.get(id)? {
        Some(AnyRecord::Task(t)) => Ok(t),
        _ => Err(ApiError::NotFound {
            kind: "task",
            id: id.to_string(),
        }),
    }
}

/// The checklist item `item` of task `t`.
fn item_mut<'a>(t: &'a mut Task, item: &str) -> Result<&'a mut ChecklistItem, ApiError> {
    t.checklist
        .iter_mut()
        .find(|i| i.id == item)
        .ok_or_else(|| ApiError::NotFound {
            kind: "checklist item",
            id: item.to_string(),
        })
}

impl Api {
    /// The checklist templates for the common hazards.
    pub fn task_templates(&self) -> Vec<Template> {
        TEMPLATES
            .iter()
            .map(|(name, items)| Template {
                name,
                items: items.to_vec(),
            })
            .collect()
    }

    /// Tasks, in due order (latest first), optionally of one grid.
    pub fn tasks(&self, grid: Option<&str>) -> Result<Vec<TaskRow>, ApiError> {
        let today = self.today().to_string();
        let store = self.store();
        let pending = self.pending_ids(&store, &["tasks"])?;
        Ok(store
            .records("tasks", grid, None)?
            .into_iter()
            .map(|r| {
                let (checked, items) = r.progress.unwrap_or((0, 0));
                TaskRow {
                    overdue: r.status != "done" && !r.sort.is_empty() && r.sort < today,
                    unsynced: pending.contains(&r.id),
                    id: r.id,
                    grid: r.grid,
                    title: r.title,
                    // Written from documents this version read: every code is known.
                    status: TaskStatus::parse(&r.status).unwrap_or(TaskStatus::Open),
                    due: r.sort,
                    checked,
                    items,
                }
            })
            .collect())
    }

    /// One task with its checklist.
    pub fn task(&self, id: &str) -> Result<TaskView, ApiError> {
        let store = self.store();
        let task = load(&store, id)?;
        Ok(TaskView {
            unsynced: self.unsynced(&store, &[id])?,
            task: TaskInfo::from(&task),
        })
    }

    /// Creates a task from a template for a building (staff only); returns its id.
    pub fn create_task(&self, input: &NewTask) -> Result<String, ApiError> {
        let mut store = self.store();
        if !self.role(&store)?.may_manage {
            return Err(ApiError::Forbidden(
                "only committee staff create inspection tasks".into(),
            ));
        }
        let community = self.community(&store)?;
        let (kind, items) = TEMPLATES
            .iter()
            .find(|(name, _)| *name == input.template)
            .ok_or_else(|| {
                ApiError::invalid(
                    "template",
                    format!("`{}` is not a checklist template", input.template),
                )
            })?;
        let compound = required("compound", &input.compound)?;
        let building = required("building", &input.building)?;
        let grid = store
            .households(&linli_store::screens::HouseholdFilter {
                compound: Some(compound.to_string()),
                building: Some(building.to_string()),
                ..Default::default()
            })?
            .into_iter()
            .find_map(|h| h.grid)
            .ok_or_else(|| {
                ApiError::invalid(
                    "building",
                    format!("{compound} {building} has no households"),
                )
            })?;
        let due: Option<Day> = match input.due.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(d) => Some(parse_day("due", d)?),
            None => None,
        };
        let assignee = if input.assignee.trim().is_empty() {
            community
                .grids
                .iter()
                .find(|g| g.id == grid)
                .map(|g| g.worker.clone())
                .unwrap_or_default()
        } else {
            input.assignee.trim().to_string()
        };
        let id = new_id("task")?;
        let task = Task {
            id: id.clone(),
            collection: linli_domain::Collection::Task,
            scope: Scope::grid(&community.id, &grid),
            title: format!("{kind} {compound}{building}栋"),
            kind: kind.to_string(),
            compound: compound.to_string(),
            building: building.to_string(),
            due,
            status: TaskStatus::Open,
            assignee,
            checklist: items
                .iter()
                .enumerate()
                .map(|(i, item)| ChecklistItem {
                    id: format!("i{}", i + 1),
                    item: item.to_string(),
                    ok: None,
                    note: String::new(),
                    photos: Vec::new(),
                    request: None,
                })
                .collect(),
            notes: String::new(),
        };
        save(
            &mut store,
            vec![AnyRecord::Task(task)],
            "create task",
            self.today(),
        )?;
        Ok(id)
    }

    /// Records one checklist item as passed (`ok`) or failed, with a note; the task's status
    /// follows (in progress, done when every item is checked).
    pub fn check_item(
        &self,
        task: &str,
        item: &str,
        ok: bool,
        note: &str,
    ) -> Result<TaskView, ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "carry out inspections")?;
        let mut t = load(&store, task)?;
        let entry = item_mut(&mut t, item)?;
        entry.ok = Some(ok);
        entry.note = note.trim().to_string();
        let (checked, all) = t.progress();
        t.status = if checked == all {
            TaskStatus::Done
        } else {
            TaskStatus::InProgress
        };
        save(
            &mut store,
            vec![AnyRecord::Task(t.clone())],
            "check item",
            self.today(),
        )?;
        let unsynced = self.unsynced(&store, &[task])?;
        Ok(TaskView {
            task: TaskInfo::from(&t),
            unsynced,
        })
    }

    /// Turns a failed checklist item into a service request (category 环境卫生 unless the
    /// community has another first), linked from the item; returns the request id.
    pub fn item_to_request(&self, task: &str, item: &str) -> Result<String, ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "carry out inspections")?;
        let community = self.community(&store)?;
        let mut t = load(&store, task)?;
        let entry = item_mut(&mut t, item)?;
        if entry.ok != Some(false) {
            return Err(ApiError::invalid(
                "ok",
                "only a failed checklist item becomes a service request",
            ));
        }
        if let Some(existing) = &entry.request {
            return Ok(existing.clone());
        }
        let category = community
            .request_categories
            .iter()
            .cloned()
            .chain(default_categories())
            .find(|c| c.code == "environment")
            .or_else(|| default_categories().into_iter().next())
            .ok_or_else(|| ApiError::invalid("category", "no request categories"))?;
        let id = new_id("rq")?;
        let user = store.author().user.clone();
        let (scope, place) = (t.scope.clone(), format!("{}{}栋", t.compound, t.building));
        let entry = item_mut(&mut t, item)?;
        let mut r = ServiceRequest::report(
            &id,
            scope,
            &format!("巡查发现：{}（{place}）", entry.item),
            &category,
            &user,
            self.now(),
            &new_id("s")?,
        );
        r.description = entry.note.clone();
        entry.request = Some(id.clone());
        save(
            &mut store,
            vec![AnyRecord::Request(r), AnyRecord::Task(t)],
            "inspection item to request",
            self.today(),
        )?;
        Ok(id)
    }
}
