//! A realistic demo community, deterministic for a seed and the instant it is made as of (now,
//! by default: its visits, requests and notices are dated up to then): an old residential
//! area of 6-storey buildings, households with members of consistent ages and valid ID
//! numbers, inspection tasks, service requests at every stage of their loop, visits, help
//! posts, notices, organisations and an owners' ballot.
//!
//! Households and tasks come out in the roster format of `gen_community.py`; everything else
//! as records in Linli's JSON. Everything is then imported through the same validated path as
//! `linli import`.

use linli_domain::ballot::{BallotStatus, MatterKind};
use linli_domain::board::{Notice, PostKind, PostStatus, Reply};
use linli_domain::request::{RequestState, Satisfaction, default_categories};
use linli_domain::roster::{Compound, CompoundKind, Grid, OrgKind};
use linli_domain::validate::{id_check_char, uscc_check_char};
use linli_domain::work::{TEMPLATES, VisitMethod, VisitOutcome};
use linli_domain::{
    Address, AnyRecord, Ballot, Choice, Collection, Community, Day, HelpPost, Matter, Organisation,
    Scope, ServiceRequest, Timestamp, Visit, Vote,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const COMPOUNDS: &[&str] = &[
    "幸福里小区",
    "和平花园",
    "阳光新村",
    "锦绣家园",
    "翠湖苑",
    "东风新村",
    "建设新村",
    "友谊小区",
];
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN_MALE: &str =
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林洋志建国峰成文博彬亮兵春东海晨";
const GIVEN_FEMALE: &str =
    "芳娜敏静丽艳娟霞秀玲桂英华慧巧美淑惠珠翠雅芝玉萍红娥琴云莲真环雪荣爱妹香月莺媛瑶怡婷雯";
const LOCAL: &[&str] = &["320106", "320104", "320102"];
const OTHER: &[&str] = &[
    "340104", "342401", "412722", "511321", "430524", "360121", "370882", "130682",
];
const FLOORS: usize = 6;
const UNITS: usize = 3;
const ROOMS: usize = 2;

/// The instant a demo is made "as of" by default: now, to the minute. Every date of the demo
/// (visits this month, requests open lately and their deadlines, notices, tasks) is relative
/// to it, so a demo made today looks like today's work; the same seed and instant give the
/// same demo.
pub fn as_of_now() -> Timestamp {
    as_of(Timestamp::now())
}

/// The instant a demo made at `now` is made as of: `now`, to the minute.
pub fn as_of(now: Timestamp) -> Timestamp {
    Timestamp(now.0 - now.0.rem_euclid(60_000))
}

struct Gen {
    rng: ChaCha8Rng,
    person_seq: usize,
    ids: std::collections::HashSet<String>,
    today: Day,
}

fn pick(rng: &mut ChaCha8Rng, s: &str) -> char {
    let chars: Vec<char> = s.chars().collect();
    chars[rng.random_range(0..chars.len())]
}

impl Gen {
    fn surname(&mut self) -> char {
        let chars: Vec<char> = SURNAMES.chars().collect();
        // Skewed towards the common surnames at the head of the list.
        let x: f64 = self.rng.random();
        let i = ((-x.max(1e-9).ln()) * 18.0) as usize;
        chars[i.min(chars.len() - 1)]
    }

    fn name(&mut self, male: bool, surname: Option<char>) -> String {
        let s = surname.unwrap_or_else(|| self.surname());
        let pool = if male { GIVEN_MALE } else { GIVEN_FEMALE };
        let n = if self.rng.random_bool(0.25) { 1 } else { 2 };
        let mut name = s.to_string();
        for _ in 0..n {
            name.push(pick(&mut self.rng, pool));
        }
        name
    }

    fn person(
        &mut self,
        male: bool,
        age: i64,
        relation: &str,
        surname: Option<char>,
        floating: bool,
        phone: Option<String>,
    ) -> serde_json::Value {
        self.person_seq += 1;
        let age = age.clamp(0, 99);
        let birth =
            self.today.0 - chrono::Duration::days(age * 365 + self.rng.random_range(0..365));
        let region = if floating {
            OTHER[self.rng.random_range(0..OTHER.len())]
        } else {
            LOCAL[self.rng.random_range(0..LOCAL.len())]
        };
        let first17 = loop {
            let seq = self.rng.random_range(0..500) * 2 + usize::from(male);
            let f = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
            if self.ids.insert(f.clone()) {
                break f;
            }
        };
        let check = id_check_char(&first17).unwrap_or('0');
        let mut tags = Vec::new();
        if floating {
            tags.push("流动人口");
        }
        for (t, p) in [("残疾人", 0.02), ("低保", 0.03), ("重点关注", 0.01)] {
            if self.rng.random_bool(p) {
                tags.push(t);
            }
        }
        if male && age >= 25 && self.rng.random_bool(0.04) {
            tags.push("退役军人");
        }
        let phone = phone.unwrap_or_else(|| self.phone());
        json!({
            "id": format!("p-{:07}", self.person_seq),
            "name": self.name(male, surname),
            "gender": if male { "男" } else { "女" },
            "birth": birth.format("%Y-%m-%d").to_string(),
            "id_number": format!("{first17}{check}"),
            "phone": phone,
            "relation": relation,
            "tags": tags,
            "notes": "",
        })
    }

    fn phone(&mut self) -> String {
        let mut p = format!("1{}", pick(&mut self.rng, "3456789"));
        for _ in 0..9 {
            p.push(char::from(b'0' + self.rng.random_range(0..10u8)));
        }
        p
    }

    fn members(&mut self, tenure: &str) -> Vec<serde_json::Value> {
        let size = if tenure == "空置" {
            1
        } else {
            [1, 2, 2, 2, 3, 3, 3, 4, 4, 5][self.rng.random_range(0..10)]
        };
        let floating = tenure == "出租" && self.rng.random_bool(0.7);
        let male = self.rng.random_bool(0.5);
        let age = if size > 1 {
            self.rng.random_range(22..=70)
        } else {
            self.rng.random_range(22..=88)
        };
        let surname = self.surname();
        let head_rel = if tenure == "出租" {
            "租户"
        } else {
            "户主"
        };
        let mut people = vec![self.person(male, age, head_rel, Some(surname), floating, None)];
        if tenure == "出租" {
            for _ in 1..size {
                let m = self.rng.random_bool(0.5);
                let a = self.rng.random_range(18..=55);
                people.push(self.person(m, a, "租户", None, floating, None));
            }
            return people;
        }
        if size >= 2 {
            let a = (age + self.rng.random_range(-5..=5)).max(20);
            people.push(self.person(!male, a, "配偶", None, false, None));
        }
        while people.len() < size {
            let k: f64 = self.rng.random();
            let m = self.rng.random_bool(0.5);
            if k < 0.65 && age >= 24 {
                let child = (age - self.rng.random_range(22..=38)).max(0);
                let phone =
                    (child < 14).then(|| people[0]["phone"].as_str().unwrap_or("").to_string());
                people.push(self.person(m, child, "子女", Some(surname), false, phone));
            } else if k < 0.9 && age <= 65 {
                let a = age + self.rng.random_range(22..=32);
                people.push(self.person(m, a, "父母", Some(surname), false, None));
            } else {
                let a = self.rng.random_range(1..=80);
                people.push(self.person(m, a, "其他", None, false, None));
            }
        }
        if size == 1
            && age >= 70
            && self.rng.random_bool(0.8)
            && let Some(tags) = people[0]["tags"].as_array_mut()
        {
            tags.insert(0, json!("独居老人"));
        }
        people
    }
}

/// Generates the demo's JSON lines, as of the instant `now` (see [`as_of_now`]):
/// deterministic for a seed and an instant.
pub fn generate(
    community: &Community,
    households: usize,
    tasks: usize,
    seed: u64,
    now: Timestamp,
) -> Vec<String> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        person_seq: 0,
        ids: Default::default(),
        today: now.day(),
    };
    let per_building = FLOORS * UNITS * ROOMS;
    let buildings_total = households.div_ceil(per_building * 85 / 100).max(1);
    let compounds = buildings_total.div_ceil(12).clamp(1, COMPOUNDS.len());
    let per_compound = buildings_total.div_ceil(compounds);
    let grids = (households / 1250).clamp(2, 16).min(buildings_total.max(2));
    let grid_of = |b: usize| format!("G{:02}", b * grids / (compounds * per_compound).max(1) + 1);
    let mut lines = Vec::new();
    let mut hh_rows: Vec<(String, String, String, String, String)> = Vec::new(); // id, grid, compound, building, head
    let mut slot = 0usize;
    let mut made = 0usize;
    while made < households {
        let b_global = slot / per_building;
        let (c, b) = (b_global / per_compound, b_global % per_compound);
        let rest = slot % per_building;
        let (unit, rest) = (rest / (FLOORS * ROOMS), rest % (FLOORS * ROOMS));
        let (floor, room) = (rest / ROOMS, rest % ROOMS);
        slot += 1;
        // Fill 85 % of the dwellings; past the planned buildings, fill every one.
        if c < compounds && !g.rng.random_bool(0.85) {
            continue;
        }
        made += 1;
        let tenure = [
            "自住", "自住", "自住", "自住", "自住", "自住", "自住", "出租", "出租", "空置",
        ][g.rng.random_range(0..10)];
        let id = format!("hh-{made:06}");
        let compound = COMPOUNDS[c % COMPOUNDS.len()].to_string();
        let building = (b + 1).to_string();
        let members = g.members(tenure);
        let grid = grid_of(b_global);
        hh_rows.push((
            id.clone(),
            grid.clone(),
            compound.clone(),
            building.clone(),
            members[0]["id"].as_str().unwrap_or("").into(),
        ));
        let area: f64 = (g.rng.random_range(3500..16000) as f64) / 100.0;
        lines.push(
            json!({
                "kind": "household", "id": id, "grid": grid, "compound": compound, "building": building,
                "unit": (unit + 1).to_string(), "room": format!("{}{:02}", floor + 1, room + 1),
                "area_m2": area, "tenure": tenure, "members": members,
            })
            .to_string(),
        );
    }
    let workers: Vec<String> = (0..grids).map(|i| format!("网格员{}", i + 1)).collect();
    let scope_grid = |grid: &str| Scope::grid(&community.id, grid);
    for i in 1..=tasks {
        let (_, grid, compound, building, _) =
            hh_rows[g.rng.random_range(0..hh_rows.len())].clone();
        let (kind, items) = TEMPLATES[g.rng.random_range(0..TEMPLATES.len())];
        let status = [
            "open",
            "open",
            "open",
            "open",
            "open",
            "in_progress",
            "in_progress",
            "in_progress",
            "done",
            "done",
        ][g.rng.random_range(0..10)];
        let share = match status {
            "open" => 0.0,
            "in_progress" => 0.5,
            _ => 1.0,
        };
        let n = g.rng.random_range(2..=items.len());
        let checklist: Vec<_> = items[..n]
            .iter()
            .map(|it| {
                let ok = if g.rng.random::<f64>() < share || share == 1.0 {
                    Some(g.rng.random_bool(0.85))
                } else {
                    None
                };
                json!({"item": it, "ok": ok})
            })
            .collect();
        let due = g.today.0 + chrono::Duration::days(g.rng.random_range(-20..60));
        lines.push(
            json!({
                "kind": "task", "id": format!("task-{i:04}"), "grid": grid,
                "title": format!("{kind} {compound}{building}栋"), "building": building,
                "due": due.format("%Y-%m-%d").to_string(), "status": status, "checklist": checklist,
            })
            .to_string(),
        );
    }
    let mut push = |r: AnyRecord| {
        if let Ok(s) = serde_json::to_string(&r) {
            lines.push(s);
        }
    };
    // Service requests at every stage of the loop.
    let cats = default_categories();
    let titles = [
        ("utilities", "楼道灯不亮"),
        ("utilities", "二次供水水压低"),
        ("environment", "垃圾桶满溢未清运"),
        ("property", "电梯异响"),
        ("neighbour", "楼上漏水影响楼下"),
        ("environment", "绿化带有积水"),
        ("property", "单元门禁损坏"),
        ("emergency", "燃气味道明显"),
        ("complex", "加装电梯意见征集"),
    ];
    let path = [
        RequestState::Accepted,
        RequestState::Dispatched,
        RequestState::InProgress,
        RequestState::Done,
        RequestState::Verified,
        RequestState::Closed,
    ];
    for i in 1..=(households / 40).max(3) {
        let (hh, grid, compound, building, head) =
            hh_rows[g.rng.random_range(0..hh_rows.len())].clone();
        let (cat, what) = titles[g.rng.random_range(0..titles.len())];
        // Where, then what: a list (or a reminder) of requests tells them apart.
        let title = &format!("{compound}{building}栋{what}");
        let category = cats.iter().find(|c| c.code == cat).unwrap_or(&cats[0]);
        // Most requests are settled (closed within the last month); the open ones were reported
        // lately, about half of them past their deadline by now.
        let closes = g.rng.random_range(0..10) < 6;
        let steps = if closes {
            path.len()
        } else {
            g.rng.random_range(0..path.len())
        };
        let hours_ago = if closes {
            g.rng.random_range(48..30 * 24)
        } else {
            g.rng
                .random_range(1..(2 * i64::from(category.deadline_hours)).max(2))
        };
        let created = Timestamp(now.0 - hours_ago * 3_600_000);
        let worker = &workers[g.rng.random_range(0..workers.len())];
        let mut r = ServiceRequest::report(
            &format!("rq-{i:05}"),
            scope_grid(&grid),
            title,
            category,
            worker,
            created,
            "s1",
        );
        r.household = Some(hh);
        r.reporter = Some(head);
        r.description = format!("居民反映：{what}，请尽快处理。");
        r.assignee = "物业服务中心".into();
        let mut at = created;
        for (k, to) in path[..steps].iter().enumerate() {
            // Up to 12 hours after the step before, leaving room for the steps after: never
            // in the future.
            let room = (now.0 - at.0) / (steps - k + 1) as i64;
            let gap = room.clamp(60_000, 12 * 3_600_000);
            at = Timestamp(at.0 + g.rng.random_range(60_000..=gap));
            let _ = r.advance(
                *to,
                if k == 0 { worker } else { "物业服务中心" },
                at,
                "",
                &format!("s{}", k + 2),
            );
        }
        if r.state() == Some(RequestState::Closed) {
            r.satisfaction = Some(
                [
                    Satisfaction::Satisfied,
                    Satisfaction::Satisfied,
                    Satisfaction::Fair,
                    Satisfaction::Dissatisfied,
                ][g.rng.random_range(0..4)],
            );
        }
        push(AnyRecord::Request(r));
    }
    // Visits in the last two months.
    for i in 1..=(households / 10).max(3) {
        let (hh, grid, _, _, _) = hh_rows[g.rng.random_range(0..hh_rows.len())].clone();
        let at = Timestamp(now.0 - g.rng.random_range(1..60 * 24) * 3_600_000);
        let home = g.rng.random_bool(0.8);
        push(AnyRecord::Visit(Visit {
            id: format!("v-{i:06}"),
            collection: Collection::Visit,
            scope: scope_grid(&grid),
            household: hh,
            at,
            worker: workers[g.rng.random_range(0..workers.len())].clone(),
            method: if g.rng.random_bool(0.8) {
                VisitMethod::InPerson
            } else {
                VisitMethod::Phone
            },
            outcome: if home {
                VisitOutcome::Done
            } else {
                VisitOutcome::NotHome
            },
            retry_on: (!home).then(|| Day(at.day().0 + chrono::Duration::days(3))),
            changes: vec![],
            follow_up: String::new(),
            outreach: if home {
                vec!["反诈宣传".into()]
            } else {
                vec![]
            },
            notes: if home {
                "信息已核实".into()
            } else {
                "未遇，已留联系卡".into()
            },
            photos: vec![],
            requests: vec![],
        }));
    }
    // Organisations with valid credit codes.
    for i in 1..=(households / 100).max(2) {
        let (_, grid, compound, building, _) =
            hh_rows[g.rng.random_range(0..hh_rows.len())].clone();
        let mut code = String::from("92320106");
        for _ in 0..9 {
            code.push(char::from(b'0' + g.rng.random_range(0..10u8)));
        }
        let check = uscc_check_char(&code).unwrap_or('0');
        code.push(check);
        let shops = ["便利店", "理发店", "早餐店", "药店", "五金店", "快递驿站"];
        push(AnyRecord::Organisation(Organisation {
            id: format!("org-{i:04}"),
            collection: Collection::Organisation,
            scope: scope_grid(&grid),
            name: format!("{}{}", &compound, shops[g.rng.random_range(0..shops.len())]),
            credit_code: code,
            kind: OrgKind::Shop,
            address: Address {
                compound,
                building,
                unit: "0".into(),
                room: format!("10{i}"),
            },
            contact_name: g.name(true, None),
            contact_phone: g.phone(),
            notes: String::new(),
        }));
    }
    // The help board.
    let posts = [
        (PostKind::Request, "求助：周末需要人帮忙搬家具"),
        (PostKind::Offer, "可以帮老人代买菜"),
        (PostKind::Offer, "闲置婴儿车免费送"),
        (PostKind::Request, "谁家有梯子借用一下"),
        (PostKind::Offer, "退休教师免费辅导数学"),
        (PostKind::Request, "找人陪独居老人去医院复诊"),
    ];
    for (i, (kind, title)) in posts.iter().enumerate() {
        let at = Timestamp(now.0 - (i as i64 + 1) * 86_400_000);
        let status = [PostStatus::Open, PostStatus::Claimed, PostStatus::Done][i % 3];
        push(AnyRecord::Post(HelpPost {
            id: format!("post-{:03}", i + 1),
            collection: Collection::Post,
            scope: Scope::community(&community.id),
            kind: *kind,
            title: (*title).into(),
            body: format!("{title}，有意请联系。"),
            author: g.name(i % 2 == 0, None),
            at,
            status,
            claimed_by: (status != PostStatus::Open).then(|| g.name(true, None)),
            replies: vec![Reply {
                id: "r1".into(),
                author: g.name(false, None),
                at: Timestamp(at.0 + 3_600_000),
                body: "我可以帮忙".into(),
            }],
        }));
    }
    push(AnyRecord::Notice(Notice {
        id: "notice-001".into(),
        collection: Collection::Notice,
        scope: Scope::community(&community.id),
        title: "关于开展冬季消防安全检查的通知".into(),
        body: "各位居民：为做好冬季防火工作，社区将于下周开展入户消防安全检查，请予以配合。严禁电动车进楼入户充电。".into(),
        author: "幸福社区居委会".into(),
        published: Timestamp(now.0 - 2 * 86_400_000),
        expires: None,
        receipts_required: true,
        receipts: hh_rows.iter().take(hh_rows.len() / 5).map(|h| (h.0.clone(), now)).collect(),
    }));
    let first_compound = hh_rows.first().map(|h| h.2.clone()).unwrap_or_default();
    let opens = Day(now.day().0 - chrono::Duration::days(3));
    let mut ballot = Ballot {
        id: "ballot-001".into(),
        collection: Collection::Ballot,
        scope: Scope::community(&community.id),
        title: format!("{first_compound}使用维修资金维修屋面及选聘物业表决"),
        compound: first_compound.clone(),
        announced: Day(opens.0 - chrono::Duration::days(16)),
        opens,
        closes: Day(opens.0 + chrono::Duration::days(20)),
        parking_counts: false,
        status: BallotStatus::Open,
        matters: vec![
            Matter {
                id: "m1".into(),
                title: "使用专项维修资金维修屋面防水".into(),
                kind: MatterKind::UseFund,
            },
            Matter {
                id: "m2".into(),
                title: "续聘现物业服务企业".into(),
                kind: MatterKind::PropertyManager,
            },
        ],
        votes: vec![],
    };
    for (k, h) in hh_rows
        .iter()
        .filter(|h| h.2 == first_compound)
        .take(30)
        .enumerate()
    {
        for m in ["m1", "m2"] {
            ballot.votes.push(Vote {
                id: format!("{}-{m}", h.0),
                part: h.0.clone(),
                owner: h.4.clone(),
                matter: m.into(),
                choice: [
                    Choice::Agree,
                    Choice::Agree,
                    Choice::Agree,
                    Choice::Against,
                    Choice::Abstain,
                ][(k + m.len()) % 5],
                entered_by: "业委会".into(),
                at: now,
                device: "demo".into(),
                proxy: None,
                paper_scan: None,
            });
        }
    }
    push(AnyRecord::Ballot(ballot));
    lines
}

/// Names the community's grids and compounds after what the demo created.
pub fn add_grids_and_compounds(c: &mut Community, records: &[AnyRecord]) {
    for r in records {
        if let AnyRecord::Household(h) = r {
            if let Some(grid) = &h.scope.grid
                && !c.grids.iter().any(|g| &g.id == grid)
            {
                let n: usize = grid.trim_start_matches('G').parse().unwrap_or(0);
                c.grids.push(Grid {
                    id: grid.clone(),
                    name: format!("第{n}网格"),
                    worker: format!("网格员{n}"),
                });
            }
            if !c.compounds.iter().any(|x| x.name == h.address.compound) {
                c.compounds.push(Compound {
                    name: h.address.compound.clone(),
                    kind: CompoundKind::Open,
                });
            }
        }
    }
}
