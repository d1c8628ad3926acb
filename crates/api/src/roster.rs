//! The roster (一标三实): browsing by compound → building → unit → room, households and their
//! members (sensitive values masked), search, reveal (logged), edits, new households, moving
//! out, deaths, and door-to-door visits.

use std::collections::HashSet;

use linli_domain::mask::{mask_id_number, mask_phone};
use linli_domain::work::{PersonChange, PersonChangeKind, VisitMethod, VisitOutcome};
use linli_domain::{
    Address, AnyRecord, Area, Day, Gender, Household, IdType, Person, Relation, Residence, Scope,
    Sensitive, SensitiveFields, Tenure, Visit, validate_household,
};
use linli_store::screens::HouseholdFilter;
use linli_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::permissions::Action;
use crate::views::{AuditRow, CompoundNode, Hit, HouseholdInfo, HouseholdRow, PersonInfo};
use crate::{Api, ApiError, RoleInfo, new_id, required};

/// Which households to list; `not_visited_since` is a day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Default, Deserialize, specta::Type)]
#[serde(default)]
pub struct HouseholdQuery {
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
    /// Only households not visited since this day.
    pub not_visited_since: Option<String>,
}

/// A sensitive value a role may see in full (each time logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum RevealField {
    /// 证件号码.
    IdNumber,
    /// 电话.
    Phone,
}

impl RevealField {
    /// The field's code (`id_number`, `phone`), as [`Api::reveal`] takes it.
    pub fn code(self) -> &'static str {
        match self {
            RevealField::IdNumber => "id_number",
            RevealField::Phone => "phone",
        }
    }
}

/// A household page: the household, its members with masked sensitive values, its visits.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct HouseholdView {
    /// The household.
    pub household: HouseholdInfo,
    /// Members, in order, with their sensitive fields masked.
    pub members: Vec<MemberView>,
    /// Visits, newest first.
    pub visits: Vec<VisitRow>,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// A member with masked sensitive fields.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct MemberView {
    /// The person.
    pub person: PersonInfo,
    /// 证件类型 code.
    pub id_type: IdType,
    /// 证件号码, masked (`1101**********1234`).
    pub id_number: String,
    /// 电话, masked (`138****5678`).
    pub phone: String,
    /// 重点人群 attention tags.
    pub tags: Vec<String>,
    /// 健康状况.
    pub health: String,
    /// Whether they may leave the household now (move out, be recorded deceased, move
    /// elsewhere): not the head while others still live there (`Household::head_must_stay`).
    pub may_leave: bool,
}

/// A person page: the person (sensitive values masked), where they live and have lived, and
/// who revealed their ID number or phone on this device.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct PersonView {
    /// The person, as on their current household.
    pub member: MemberView,
    /// The household they live in (or, gone, the one they left last).
    pub household: String,
    /// Its address.
    pub address: Address,
    /// Its grid.
    pub grid: Option<String>,
    /// Every household they are on, the current one first.
    pub places: Vec<PlaceRow>,
    /// Reveals of their ID number or phone on this device, newest first (only for roles
    /// that may reveal; empty otherwise).
    pub reveals: Vec<AuditRow>,
    /// Changed here and not yet at the relay.
    pub unsynced: bool,
}

/// One household a person is or was on.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct PlaceRow {
    /// Household id.
    pub household: String,
    /// Its address.
    pub address: Address,
    /// Their relation to its head.
    pub relation: Relation,
    /// 迁入日期.
    pub moved_in: Option<Day>,
    /// 迁出日期.
    pub moved_out: Option<Day>,
    /// 死亡日期.
    pub deceased: Option<Day>,
}

/// A visit in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct VisitRow {
    /// Visit id.
    pub id: String,
    /// When (ms).
    pub at: i64,
    /// 完成 / 未遇.
    pub outcome: VisitOutcome,
    /// 入户 / 电话 / 微信.
    pub method: VisitMethod,
    /// Who made the visit.
    pub worker: String,
    /// When to try again (after 未遇).
    pub retry_on: Option<Day>,
    /// Follow-up of attention tags.
    pub follow_up: String,
    /// Notes.
    pub notes: String,
}

/// A new household (新增住户) with its head.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewHousehold {
    /// The address.
    pub address: Address,
    /// 网格; default: the grid of the building's other households.
    #[serde(default)]
    pub grid: Option<String>,
    /// Tenure.
    pub tenure: Tenure,
    /// Area in m².
    #[serde(default)]
    pub area_m2: f64,
    /// The head's name.
    pub head_name: String,
    /// The head's gender.
    pub gender: Gender,
    /// The head's birth date, `YYYY-MM-DD`.
    pub birth: String,
    /// Registered, floating or staying.
    pub residence: Residence,
    /// ID type.
    pub id_type: IdType,
    /// ID number.
    pub id_number: String,
    /// Phone.
    #[serde(default)]
    pub phone: String,
    /// Attention tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A new member of an existing household (新增成员).
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewMember {
    /// Name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date, `YYYY-MM-DD`.
    pub birth: String,
    /// Relation to the head.
    pub relation: Relation,
    /// Registered, floating or staying.
    pub residence: Residence,
    /// ID type.
    pub id_type: IdType,
    /// ID number.
    pub id_number: String,
    /// Phone.
    #[serde(default)]
    pub phone: String,
}

/// A visit to record (入户走访).
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewVisit {
    /// The household.
    pub household: String,
    /// 入户 / 电话 / 微信.
    pub method: VisitMethod,
    /// 完成 / 未遇.
    pub outcome: VisitOutcome,
    /// When nobody was home: the day to try again (`YYYY-MM-DD`).
    #[serde(default)]
    pub retry_on: Option<String>,
    /// Changes to people seen on the visit.
    #[serde(default)]
    pub changes: Vec<PersonChange>,
    /// Follow-up of attention tags (e.g. how an elderly person living alone is doing).
    #[serde(default)]
    pub follow_up: String,
    /// Notes.
    #[serde(default)]
    pub notes: String,
}

/// A person moving into a household today. Ethnicity stays unknown until someone records it.
fn arrival(
    id: &str,
    name: &str,
    gender: Gender,
    birth: Day,
    relation: Relation,
    residence: Residence,
    today: Day,
) -> Person {
    Person {
        id: id.to_string(),
        name: name.to_string(),
        gender,
        birth,
        relation,
        residence,
        ethnicity: String::new(),
        moved_in: Some(today),
        moved_out: None,
        deceased: None,
        workplace: String::new(),
        notes: String::new(),
    }
}

/// The domain's rules for a household and its sensitive part, as an API error.
/// The head (户主) may not leave while others still live in the household: a new head is named
/// first (`set_head`). The last one living there may leave.
fn head_may_leave(h: &Household, person: &str) -> Result<(), ApiError> {
    if h.head_must_stay(person) {
        let name = h.member(person).map_or(person, |m| m.name.as_str());
        return Err(ApiError::invalid(
            "head",
            format!(
                "{name} is the head of this household (户主): make another member the head first"
            ),
        ));
    }
    Ok(())
}

/// Views of a household or person are logged once in this long per person and record.
const VIEW_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A member as screens show them: ID number and phone masked.
fn masked(h: &Household, p: &Person, f: Option<&SensitiveFields>) -> MemberView {
    MemberView {
        may_leave: !h.head_must_stay(&p.id),
        person: PersonInfo::from(p),
        id_type: f.map_or(IdType::ResidentId, |f| f.id_type),
        id_number: f.map(|f| mask_id_number(&f.id_number)).unwrap_or_default(),
        phone: f.map(|f| mask_phone(&f.phone)).unwrap_or_default(),
        tags: f.map(|f| f.tags.clone()).unwrap_or_default(),
        health: f.map(|f| f.health.clone()).unwrap_or_default(),
    }
}

fn check_household(h: &Household, s: &Sensitive, today: Day) -> Result<(), ApiError> {
    validate_household(h, s, today).map_err(|errors| {
        StoreError::Invalid {
            id: h.id.clone(),
            errors,
        }
        .into()
    })
}

pub(crate) fn parse_day(field: &str, s: &str) -> Result<Day, ApiError> {
    Day::parse(s).map_err(|m| ApiError::invalid(field, m))
}

/// The first instant of a day in China Standard Time (ms).
pub(crate) fn day_start_ms(day: Day) -> i64 {
    day.0.pred_opt().map_or(i64::MIN, |d| Day(d).end_ms())
}

impl Api {
    /// Compounds → buildings → units, with household counts (the roster's tree).
    pub fn compounds(&self) -> Result<Vec<CompoundNode>, ApiError> {
        let store = self.store();
        self.require(&store, Action::ReadRoster)?;
        Ok(store
            .compounds()?
            .into_iter()
            .map(CompoundNode::from)
            .collect())
    }

    /// Households in address order, filtered, with their "not yet synced" marks.
    pub fn households(&self, q: &HouseholdQuery) -> Result<Vec<HouseholdRow>, ApiError> {
        self.require(&self.store(), Action::ReadRoster)?;
        let not_visited_since = match q.not_visited_since.as_deref() {
            Some(s) => Some(day_start_ms(parse_day("not_visited_since", s)?)),
            None => None,
        };
        let filter = HouseholdFilter {
            compound: q.compound.clone(),
            building: q.building.clone(),
            unit: q.unit.clone(),
            grid: q.grid.clone(),
            tag: q.tag.clone(),
            not_visited_since,
        };
        let store = self.store();
        let pending = self.pending_ids(&store, &["households", "sensitive"])?;
        let mut rows = store.households(&filter)?;
        for r in &mut rows {
            r.unsynced = pending.contains(&r.id) || pending.contains(&Sensitive::doc_id(&r.id));
        }
        Ok(rows.into_iter().map(HouseholdRow::from).collect())
    }

    /// A household page. Sensitive values are masked.
    pub fn household(&self, id: &str) -> Result<HouseholdView, ApiError> {
        let store = self.store();
        self.require(&store, Action::ReadRoster)?;
        // Its members' attention tags and health are shown: logged (once in 5 minutes).
        store.audit_once("view", id, "tags,health", VIEW_WINDOW_MS)?;
        let (household, sensitive) = store.household(id)?.ok_or_else(|| ApiError::NotFound {
            kind: "household",
            id: id.to_string(),
        })?;
        let members = household
            .members
            .iter()
            .map(|p| masked(&household, p, sensitive.people.get(&p.id)))
            .collect();
        // What each visit recorded (a household has a few; each is read whole).
        let mut visits = Vec::new();
        for r in store.records("visits", None, Some(id))? {
            if let Some(AnyRecord::Visit(v)) = store.get(&r.id)? {
                visits.push(VisitRow {
                    at: v.at.0,
                    id: v.id,
                    outcome: v.outcome,
                    method: v.method,
                    worker: v.worker,
                    retry_on: v.retry_on,
                    follow_up: v.follow_up,
                    notes: v.notes,
                });
            }
        }
        Ok(HouseholdView {
            unsynced: self.unsynced(&store, &[id, &Sensitive::doc_id(id)])?,
            household: HouseholdInfo::from(&household),
            members,
            visits,
        })
    }

    /// A person page.
    pub fn person(&self, id: &str) -> Result<PersonView, ApiError> {
        let store = self.store();
        self.require(&store, Action::ReadRoster)?;
        store.audit_once("view", id, "tags,health", VIEW_WINDOW_MS)?;
        let not_found = || ApiError::NotFound {
            kind: "person",
            id: id.to_string(),
        };
        let current = store.household_of(id)?.ok_or_else(not_found)?;
        let mut places = Vec::new();
        let mut member = None;
        let mut homes = store.households_of(id)?;
        // The current household first, then the others by id.
        homes.sort_by_key(|(h, _)| (h != &current, h.clone()));
        for (hh, _) in homes {
            let Some((h, s)) = store.household(&hh)? else {
                continue;
            };
            let Some(p) = h.member(id) else {
                continue;
            };
            places.push(PlaceRow {
                household: h.id.clone(),
                address: h.address.clone(),
                relation: p.relation,
                moved_in: p.moved_in,
                moved_out: p.moved_out,
                deceased: p.deceased,
            });
            if member.is_none() {
                member = Some((masked(&h, p, s.people.get(id)), h));
            }
        }
        let (member, h) = member.ok_or_else(not_found)?;
        let reveals = if self.role(&store)?.may_reveal {
            store
                .audit_of(id, 50)?
                .into_iter()
                .map(AuditRow::from)
                .collect()
        } else {
            Vec::new()
        };
        Ok(PersonView {
            unsynced: self.unsynced(&store, &[&h.id, &Sensitive::doc_id(&h.id)])?,
            member,
            household: h.id,
            address: h.address,
            grid: h.scope.grid,
            places,
            reveals,
        })
    }

    /// Moves a person to another household of the community (户内迁移): they are marked moved
    /// out of the one they live in and move into `to` today, with `relation` to its head,
    /// taking their ID, phone, tags and health along. Both households change in one write.
    pub fn move_person(&self, person: &str, to: &str, relation: Relation) -> Result<(), ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "change the roster")?;
        let from = store
            .household_of(person)?
            .ok_or_else(|| ApiError::NotFound {
                kind: "person",
                id: person.to_string(),
            })?;
        if from == to {
            return Err(ApiError::invalid(
                "to",
                "the person already lives in this household",
            ));
        }
        let missing = |id: &str| ApiError::NotFound {
            kind: "household",
            id: id.to_string(),
        };
        let (mut old, old_s) = store.household(&from)?.ok_or_else(|| missing(&from))?;
        let (mut new, mut new_s) = store.household(to)?.ok_or_else(|| missing(to))?;
        let today = self.today();
        head_may_leave(&old, person)?;
        let leaving = old
            .members
            .iter_mut()
            .find(|m| m.id == person)
            .ok_or_else(|| missing(&from))?;
        if !leaving.is_present() {
            return Err(ApiError::invalid(
                "person",
                "has moved out or died: there is nobody to move",
            ));
        }
        let mut arriving = leaving.clone();
        leaving.moved_out = Some(today);
        arriving.relation = relation;
        arriving.moved_in = Some(today);
        arriving.moved_out = None;
        // Someone moving back takes up their old entry (a household lists a person once).
        match new.members.iter_mut().find(|m| m.id == person) {
            Some(m) => *m = arriving,
            None => new.members.push(arriving),
        }
        if let Some(f) = old_s.people.get(person) {
            new_s.people.insert(person.to_string(), f.clone());
        }
        check_household(&old, &old_s, today)?;
        check_household(&new, &new_s, today)?;
        store.put(
            vec![
                AnyRecord::Household(old),
                AnyRecord::Household(new),
                AnyRecord::Sensitive(new_s),
            ],
            "move person",
        )?;
        Ok(())
    }

    /// People by name, pinyin initials, last four digits of ID or phone, or address.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<Hit>, ApiError> {
        if text.trim().is_empty() {
            self.require(&self.store(), Action::ReadRoster)?;
            return Ok(Vec::new());
        }
        {
            let store = self.store();
            self.require(&store, Action::ReadRoster)?;
            // Searches are logged without their text (it may be a name or a number), once a
            // minute however many letters are typed.
            store.audit_once("search", "", "", 60_000)?;
        }
        Ok(self
            .store()
            .search(text, limit.clamp(1, 500))?
            .into_iter()
            .map(Hit::from)
            .collect())
    }

    /// A person's ID number or phone in full, if the role allows; the reveal is logged first.
    pub fn reveal(&self, person: &str, field: &str, reason: &str) -> Result<String, ApiError> {
        let mut store = self.store();
        if !self.role(&store)?.may_reveal {
            return Err(ApiError::Forbidden(
                "this device's role may not see ID numbers or phones in full".into(),
            ));
        }
        let p = store.person(person)?.ok_or_else(|| ApiError::NotFound {
            kind: "person",
            id: person.to_string(),
        })?;
        let value = match field {
            "id_number" => p.sensitive.id_number,
            "phone" => p.sensitive.phone,
            other => {
                return Err(ApiError::invalid(
                    "field",
                    format!("`{other}` cannot be revealed (id_number or phone)"),
                ));
            }
        };
        store.set_reveal_reason(Some(reason))?;
        let checked = store.check_reveal(person, field);
        store.set_reveal_reason(None)?;
        checked?;
        tracing::info!(person, field, "revealed a sensitive value");
        Ok(value)
    }

    /// Changes one field of a record (or of a person), validated. Returns whether it changed.
    pub fn edit(&self, id: &str, field: &str, value: &str) -> Result<bool, ApiError> {
        let mut store = self.store();
        self.check_roster_write(&store, id)?;
        let changed = store.edit(id, field, value)?.changed > 0;
        if changed {
            // Which record and field; never the value.
            store.audit("edit", id, field)?;
        }
        Ok(changed)
    }

    /// The device's role, if it may change the roster (and record visits and inspections);
    /// otherwise an error saying it may not `what`.
    pub(crate) fn roster_role(&self, store: &Store, what: &str) -> Result<RoleInfo, ApiError> {
        self.require(store, Action::EditRoster)
            .map_err(|e| match e {
                ApiError::Forbidden(_) => {
                    ApiError::Forbidden(format!("this device's role may not {what}"))
                }
                e => e,
            })
    }

    /// Whether this device's role may change the record `id` field by field: the roster and
    /// the work on it (households, people, organisations, visits, tasks, requests) as the roster;
    /// notices as publishing; the community as managing; help posts are everyone's.
    fn check_roster_write(&self, store: &Store, id: &str) -> Result<(), ApiError> {
        use linli_domain::Collection as C;
        let collection = if store.household_of(id)?.is_some() {
            Some(C::Household)
        } else {
            store.collection_of(id)?
        };
        match collection {
            Some(C::Household | C::Person | C::Sensitive | C::Organisation | C::Visit) => {
                self.roster_role(store, "change the roster")?;
            }
            Some(C::Task | C::Request) => {
                self.roster_role(store, "change inspection tasks or requests")?;
            }
            Some(C::Notice) => {
                self.require(store, Action::Publish)?;
            }
            Some(C::Community | C::Ballot) => {
                self.require(store, Action::Manage)?;
            }
            Some(C::Post) | None => {}
        }
        Ok(())
    }

    /// Adds a household with its head; returns the household id.
    pub fn add_household(&self, input: &NewHousehold) -> Result<String, ApiError> {
        let mut store = self.store();
        let role = self.roster_role(&store, "change the roster")?;
        let community = self.community(&store)?;
        let name = required("head_name", &input.head_name)?;
        let birth = parse_day("birth", &input.birth)?;
        let a = &input.address;
        let same_building = store.households(&HouseholdFilter {
            compound: Some(a.compound.clone()),
            building: Some(a.building.clone()),
            ..HouseholdFilter::default()
        })?;
        let grid = match input.grid.as_deref().filter(|g| !g.trim().is_empty()) {
            Some(g) => Some(g.trim().to_string()),
            None => same_building.iter().find_map(|h| h.grid.clone()),
        };
        let Some(grid) = grid else {
            return Err(ApiError::invalid(
                "grid",
                "is required for a building with no households yet",
            ));
        };
        if role.code == crate::RoleCode::Grid && !role.grids.contains(&grid) {
            return Err(ApiError::Forbidden(format!(
                "grid {grid} is not one of this device's grids"
            )));
        }
        if same_building
            .iter()
            .any(|h| h.unit == a.unit && h.room == a.room)
        {
            return Err(ApiError::invalid(
                "address",
                format!("{a} already has a household"),
            ));
        }
        let id = new_id("hh")?;
        let person_id = new_id("p")?;
        let today = self.today();
        let head = arrival(
            &person_id,
            name,
            input.gender,
            birth,
            Relation::Head,
            input.residence,
            today,
        );
        let household = Household {
            id: id.clone(),
            collection: linli_domain::Collection::Household,
            scope: Scope::grid(&community.id, &grid),
            address: a.clone(),
            area: Area::from_m2(input.area_m2)
                .ok_or_else(|| ApiError::invalid("area_m2", "is not a positive number"))?,
            usage: linli_domain::roster::DwellingUse::Residential,
            tenure: input.tenure,
            owners: Vec::new(),
            head: Some(person_id.clone()),
            members: vec![head],
            tags: Vec::new(),
            notes: String::new(),
            last_visit: None,
        };
        let mut sensitive = Sensitive::for_household(&household);
        sensitive.people.insert(
            person_id,
            SensitiveFields {
                id_type: input.id_type,
                id_number: input.id_number.trim().to_string(),
                phone: input.phone.trim().to_string(),
                tags: input.tags.clone(),
                health: String::new(),
            },
        );
        check_household(&household, &sensitive, today)?;
        let mut records = vec![
            AnyRecord::Household(household),
            AnyRecord::Sensitive(sensitive),
        ];
        // A new grid or compound joins the community's lists, in the same transaction.
        let mut updated = community.clone();
        crate::demo::add_grids_and_compounds(&mut updated, &records);
        if updated != community {
            records.push(AnyRecord::Community(updated));
        }
        store.put(records, "add household")?;
        Ok(id)
    }

    /// Adds a member to a household (moved in today); returns the person id.
    pub fn add_member(&self, household: &str, input: &NewMember) -> Result<String, ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "change the roster")?;
        let (mut h, mut sensitive) =
            store
                .household(household)?
                .ok_or_else(|| ApiError::NotFound {
                    kind: "household",
                    id: household.to_string(),
                })?;
        let id = new_id("p")?;
        let today = self.today();
        h.members.push(arrival(
            &id,
            required("name", &input.name)?,
            input.gender,
            parse_day("birth", &input.birth)?,
            input.relation,
            input.residence,
            today,
        ));
        sensitive.people.insert(
            id.clone(),
            SensitiveFields {
                id_type: input.id_type,
                id_number: input.id_number.trim().to_string(),
                phone: input.phone.trim().to_string(),
                tags: Vec::new(),
                health: String::new(),
            },
        );
        check_household(&h, &sensitive, today)?;
        store.put(
            vec![AnyRecord::Household(h), AnyRecord::Sensitive(sensitive)],
            "add member",
        )?;
        Ok(id)
    }

    /// Marks a person as moved out (迁出) on `day` (default today); they stay on the roster as
    /// history.
    pub fn move_out(&self, person: &str, day: Option<&str>) -> Result<bool, ApiError> {
        self.person_day(person, "moved_out", day)
    }

    /// Marks a person as deceased (死亡) on `day` (default today).
    pub fn mark_deceased(&self, person: &str, day: Option<&str>) -> Result<bool, ApiError> {
        self.person_day(person, "deceased", day)
    }

    fn person_day(&self, person: &str, field: &str, day: Option<&str>) -> Result<bool, ApiError> {
        let day = match day {
            Some(d) => parse_day(field, d)?,
            None => self.today(),
        };
        {
            let store = self.store();
            if let Some(hh) = store.household_of(person)?
                && let Some((h, _)) = store.household(&hh)?
            {
                head_may_leave(&h, person)?;
            }
        }
        self.edit(person, field, &day.to_string())
    }

    /// Makes a present member the head of their household (户主变更); the former head, if
    /// still living there, is then listed as "other" until someone sets their relation.
    pub fn set_head(&self, household: &str, person: &str) -> Result<(), ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "change the roster")?;
        let (mut h, s) = store
            .household(household)?
            .ok_or_else(|| ApiError::NotFound {
                kind: "household",
                id: household.to_string(),
            })?;
        if !h.member(person).is_some_and(Person::is_present) {
            return Err(ApiError::invalid(
                "person",
                "the new head must be a member who lives in the household",
            ));
        }
        let former = h.head.replace(person.to_string());
        for m in &mut h.members {
            if m.id == person {
                m.relation = Relation::Head;
            } else if Some(&m.id) == former.as_ref() && m.relation == Relation::Head {
                m.relation = Relation::Other;
            }
        }
        check_household(&h, &s, self.today())?;
        store.put(vec![AnyRecord::Household(h)], "change head")?;
        Ok(())
    }

    /// Records a visit; the household's last visit day follows, and so do the people the visit
    /// found moved out or deceased (today). Returns the visit id.
    pub fn record_visit(&self, input: &NewVisit) -> Result<String, ApiError> {
        let mut store = self.store();
        self.roster_role(&store, "record visits")?;
        let (mut household, sensitive) =
            store
                .household(&input.household)?
                .ok_or_else(|| ApiError::NotFound {
                    kind: "household",
                    id: input.household.clone(),
                })?;
        let retry_on = match input.retry_on.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(parse_day("retry_on", s)?),
            None => None,
        };
        let at = self.now();
        let id = new_id("v")?;
        let visit = Visit {
            id: id.clone(),
            collection: linli_domain::Collection::Visit,
            scope: household.scope.clone(),
            household: household.id.clone(),
            at,
            worker: store.author().user.clone(),
            method: input.method,
            outcome: input.outcome,
            retry_on,
            changes: input.changes.clone(),
            follow_up: input.follow_up.trim().to_string(),
            outreach: Vec::new(),
            notes: input.notes.trim().to_string(),
            photos: Vec::new(),
            requests: Vec::new(),
        };
        let today = self.today();
        linli_domain::Record::validate(&visit, today).map_err(|errors| StoreError::Invalid {
            id: id.clone(),
            errors,
        })?;
        // People who moved out or died, seen on the visit, change on the roster in the same
        // write as the visit that records it.
        let mut roster_changed = false;
        for change in &input.changes {
            let member = household
                .members
                .iter_mut()
                .find(|m| m.id == change.person)
                .ok_or_else(|| ApiError::NotFound {
                    kind: "member of this household",
                    id: change.person.clone(),
                })?;
            match change.change {
                PersonChangeKind::MovedOut if member.moved_out.is_none() => {
                    member.moved_out = Some(today);
                    roster_changed = true;
                }
                PersonChangeKind::Deceased if member.deceased.is_none() => {
                    member.deceased = Some(today);
                    roster_changed = true;
                }
                _ => {}
            }
        }
        if roster_changed {
            // The head leaving with others staying: a new head is named first (a whole family
            // moving out together may go).
            if let Some(head) = &household.head
                && input.changes.iter().any(|c| &c.person == head)
                && !household.member(head).is_some_and(Person::is_present)
                && household.members.iter().any(Person::is_present)
            {
                let name = household
                    .member(head)
                    .map_or(head.as_str(), |m| m.name.as_str());
                return Err(ApiError::invalid(
                    "changes",
                    format!(
                        "{name} is the head of this household (户主): make another member the head first"
                    ),
                ));
            }
            check_household(&household, &sensitive, today)?;
        }
        let mut records = vec![AnyRecord::Visit(visit)];
        if input.outcome == VisitOutcome::Done {
            household.last_visit = Some(at.day());
            roster_changed = true;
        }
        if roster_changed {
            records.push(AnyRecord::Household(household));
        }
        store.put(records, "record visit")?;
        Ok(id)
    }

    /// Ids of the documents of `collections` not yet at the relay (none when no relay is set:
    /// nothing waits).
    pub(crate) fn pending_ids(
        &self,
        store: &Store,
        collections: &[&str],
    ) -> Result<HashSet<String>, ApiError> {
        let Some(peer) = self.relay_peer(store)? else {
            return Ok(HashSet::new());
        };
        Ok(store.pending_in(&peer, collections)?)
    }

    /// Whether any of `ids` has changes not yet at the relay.
    pub(crate) fn unsynced(&self, store: &Store, ids: &[&str]) -> Result<bool, ApiError> {
        let Some(peer) = self.relay_peer(store)? else {
            return Ok(false);
        };
        Ok(store.is_pending(&peer, ids)?)
    }
}
