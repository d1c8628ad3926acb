//! A grid worker's field work: door-to-door visits (入户走访) and inspection tasks (巡查任务)
//! with checklists.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::value::{Day, Timestamp};
use crate::{Collection, Scope, record_impl, str_enum};

str_enum! {
    /// 走访方式 how a visit was made
    pub enum VisitMethod {
        /// 入户
        InPerson = ("in_person", "入户", "in person"),
        /// 电话
        Phone = ("phone", "电话", "phone"),
        /// 微信
        WeChat = ("wechat", "微信", "WeChat"),
    }
}

str_enum! {
    /// 走访结果
    pub enum VisitOutcome {
        /// 完成
        Done = ("done", "完成", "done"),
        /// 未遇 nobody home: schedule a retry
        NotHome = ("not_home", "未遇", "nobody home"),
    }
}

str_enum! {
    /// A change to a household's people recorded during a visit.
    pub enum PersonChangeKind {
        /// 新增
        New = ("new", "新增", "new"),
        /// 迁出
        MovedOut = ("moved_out", "迁出", "moved out"),
        /// 死亡
        Deceased = ("deceased", "死亡", "deceased"),
        /// 信息变更
        Updated = ("updated", "信息变更", "details updated"),
    }
}

/// A change to one person, recorded in a visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile, specta::Type)]
pub struct PersonChange {
    /// The person id.
    #[key]
    pub person: String,
    /// What changed.
    pub change: PersonChangeKind,
    /// Details.
    pub note: String,
}

/// 入户走访 a visit to a household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Visit {
    /// Visit id.
    pub id: String,
    /// Always [`Collection::Visit`].
    pub collection: Collection,
    /// Community and grid (the household's).
    pub scope: Scope,
    /// The household visited.
    pub household: String,
    /// When.
    pub at: Timestamp,
    /// 网格员 the worker.
    pub worker: String,
    /// 入户 / 电话 / 微信
    pub method: VisitMethod,
    /// 完成 / 未遇
    pub outcome: VisitOutcome,
    /// When to try again after 未遇.
    pub retry_on: Option<Day>,
    /// Changes made to people.
    pub changes: Vec<PersonChange>,
    /// Follow-up on attention tags (e.g. 独居老人 checked on).
    pub follow_up: String,
    /// 宣传 outreach given (反诈, 消防安全 …).
    pub outreach: Vec<String>,
    /// 备注
    pub notes: String,
    /// Photo ids.
    pub photos: Vec<String>,
    /// Service requests opened from this visit.
    pub requests: Vec<String>,
}

record_impl!(
    Visit,
    Collection::Visit,
    |s| format!("{} {} {}", s.at, s.household, s.outcome.zh()),
    |v, today| {
        v.require("household", &s.household);
        v.require("worker", &s.worker);
        if s.at.day() > today.0.succ_opt().map(Day).unwrap_or(today) {
            v.error("at", format!("{} is in the future", s.at));
        }
        if s.outcome == VisitOutcome::NotHome && s.retry_on.is_none() {
            v.error("retry_on", "is required when nobody was home (未遇)");
        }
    }
);

str_enum! {
    /// 任务状态
    pub enum TaskStatus {
        /// 待办
        Open = ("open", "待办", "open"),
        /// 进行中
        InProgress = ("in_progress", "进行中", "in progress"),
        /// 已完成
        Done = ("done", "已完成", "done"),
    }
}

/// One item of an inspection checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Reconcile)]
pub struct ChecklistItem {
    /// Item id, unique in the task (`c1`, `c2` …), so concurrent ticks merge per item.
    #[key]
    pub id: String,
    /// What to check, e.g. `楼道内无电动车停放`.
    pub item: String,
    /// `true` passed, `false` failed (a hazard), `None` not checked yet.
    pub ok: Option<bool>,
    /// Worker's note.
    pub note: String,
    /// Photo ids.
    pub photos: Vec<String>,
    /// The service request a failed item was turned into.
    pub request: Option<String>,
}

crate::hydrate::record_fields!(ChecklistItem {
    id,
    item,
    ok,
    note,
    photos,
    request
});

/// 巡查任务 an inspection task on one building.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Always [`Collection::Task`].
    pub collection: Collection,
    /// Community and grid.
    pub scope: Scope,
    /// 标题, e.g. `电动车楼道充电巡查 幸福里小区3栋`.
    pub title: String,
    /// The template it was made from (`电动车楼道充电巡查`), empty for ad-hoc tasks.
    pub kind: String,
    /// 小区 (may be empty when the task names only a building number)
    pub compound: String,
    /// 楼栋
    pub building: String,
    /// 截止日期
    pub due: Option<Day>,
    /// Status.
    pub status: TaskStatus,
    /// Assigned worker.
    pub assignee: String,
    /// 检查项
    pub checklist: Vec<ChecklistItem>,
    /// 备注
    pub notes: String,
}

crate::hydrate::record_fields!(Task {
    id,
    collection,
    scope,
    title,
    kind,
    compound,
    building,
    due,
    status,
    assignee,
    notes;
    checklist
});

impl Task {
    /// (checked items, all items).
    pub fn progress(&self) -> (usize, usize) {
        (
            self.checklist.iter().filter(|i| i.ok.is_some()).count(),
            self.checklist.len(),
        )
    }
}

record_impl!(Task, Collection::Task, |s| s.title.clone(), |v, _today| {
    v.require("title", &s.title);
    let mut ids = std::collections::HashSet::new();
    for (i, item) in s.checklist.iter().enumerate() {
        v.nested(&format!("checklist[{i}]"), |v| {
            v.require("id", &item.id);
            v.require("item", &item.item);
        });
        if !ids.insert(item.id.as_str()) {
            v.error(&format!("checklist[{i}].id"), "is used twice");
        }
    }
    if s.status == TaskStatus::Done && s.checklist.iter().any(|i| i.ok.is_none()) {
        v.error(
            "status",
            "a task is done only when every checklist item is checked",
        );
    }
});

/// Checklist templates for the common hazards (常见隐患).
pub const TEMPLATES: &[(&str, &[&str])] = &[
    (
        "电动车楼道充电巡查",
        &[
            "楼道内无电动车停放",
            "无飞线充电",
            "无入户充电",
            "充电桩运行正常",
        ],
    ),
    (
        "消防通道堵塞排查",
        &[
            "消防通道畅通",
            "安全出口标识完好",
            "常闭式防火门关闭",
            "应急照明正常",
        ],
    ),
    (
        "楼道杂物清理巡查",
        &["楼道无堆放杂物", "楼梯间无易燃物", "地下室无堆物"],
    ),
    (
        "消防器材检查",
        &[
            "灭火器在有效期内",
            "消火栓箱完好",
            "水带水枪齐全",
            "压力表指针在绿区",
        ],
    ),
    (
        "电梯安全检查",
        &["电梯年检合格证在有效期", "紧急呼叫畅通", "轿厢照明正常"],
    ),
    (
        "燃气安全巡查",
        &["燃气管道无私改", "报警器工作正常", "软管未老化"],
    ),
    (
        "高空坠物隐患排查",
        &["外墙无脱落", "阳台无危险悬挂物", "空调外机支架牢固"],
    ),
    (
        "违章搭建巡查",
        &["屋顶无违建", "一楼无私自扩建", "无占用公共部位"],
    ),
    (
        "群租房排查",
        &["无隔断群租", "居住人数登记一致", "出租登记已备案"],
    ),
    (
        "环境卫生巡查",
        &["垃圾分类投放规范", "绿化无毁损", "无积水蚊蝇孳生"],
    ),
];
