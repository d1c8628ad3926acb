//! The roster in the 一标三实 model: the community with its grids and compounds, standard
//! addresses (标准地址), households (户), people (实有人口) and organisations (实有单位).

use std::collections::BTreeMap;
use std::fmt;

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

pub use crate::request::RequestCategory;
use crate::validate::{IdSex, check_credit_code, check_phone, parse_id_number};
use crate::value::{Area, Day, Timestamp};
use crate::{Collection, Scope, ValidationErrors, record_impl, str_enum};

str_enum! {
    /// 性别 gender
    pub enum Gender {
        /// 男
        Male = ("male", "男", "male"),
        /// 女
        Female = ("female", "女", "female"),
    }
}

str_enum! {
    /// 房屋状态 how a dwelling is used by its owner
    pub enum Tenure {
        /// 自住
        OwnerOccupied = ("owner_occupied", "自住", "owner-occupied"),
        /// 出租
        Rented = ("rented", "出租", "rented"),
        /// 空置
        Empty = ("empty", "空置", "empty"),
    }
}

str_enum! {
    /// 房屋用途 what a dwelling is for
    pub enum DwellingUse {
        /// 住宅
        Residential = ("residential", "住宅", "residential"),
        /// 商铺
        Shop = ("shop", "商铺", "shop"),
        /// 车位 (counts in ballots where local rules say so)
        Parking = ("parking", "车位", "parking space"),
    }
}

str_enum! {
    /// 与户主关系 relation to the head of household
    pub enum Relation {
        /// 户主
        Head = ("head", "户主", "head"),
        /// 配偶
        Spouse = ("spouse", "配偶", "spouse"),
        /// 子女
        Child = ("child", "子女", "child"),
        /// 父母
        Parent = ("parent", "父母", "parent"),
        /// 孙子女
        Grandchild = ("grandchild", "孙子女", "grandchild"),
        /// 其他
        Other = ("other", "其他", "other"),
        /// 租户
        Tenant = ("tenant", "租户", "tenant"),
    }
}

str_enum! {
    /// 人口类型 residence type
    pub enum Residence {
        /// 户籍 registered here
        Registered = ("registered", "户籍", "registered"),
        /// 流动 floating population
        Floating = ("floating", "流动", "floating"),
        /// 寄住 staying with relatives
        Staying = ("staying", "寄住", "staying"),
    }
}

str_enum! {
    /// 证件类型 identity document type
    pub enum IdType {
        /// 居民身份证 (18 digits, GB 11643)
        ResidentId = ("resident_id", "居民身份证", "resident ID card"),
        /// 护照
        Passport = ("passport", "护照", "passport"),
        /// 港澳台居民居住证
        HkMacaoTaiwan = ("hmt_permit", "港澳台居民居住证", "HK/Macao/Taiwan residence permit"),
        /// 外国人永久居留身份证
        ForeignPermanent = ("foreign_permanent", "外国人永久居留身份证", "foreigner's permanent residence ID"),
        /// 其他证件
        Other = ("other", "其他证件", "other"),
    }
}

str_enum! {
    /// 小区类型 how a compound is enclosed
    pub enum CompoundKind {
        /// 封闭式
        Gated = ("gated", "封闭式", "gated"),
        /// 半封闭式
        HalfOpen = ("half_open", "半封闭式", "half-open"),
        /// 开放式
        Open = ("open", "开放式", "open"),
    }
}

str_enum! {
    /// 单位类型 organisation type
    pub enum OrgKind {
        /// 商铺
        Shop = ("shop", "商铺", "shop"),
        /// 企业
        Company = ("company", "企业", "company"),
        /// 学校
        School = ("school", "学校", "school"),
        /// 医疗机构
        Clinic = ("clinic", "医疗机构", "clinic"),
        /// 机关事业单位
        Public = ("public", "机关事业单位", "public body"),
        /// 社会组织
        Association = ("association", "社会组织", "association"),
        /// 其他
        Other = ("other", "其他", "other"),
    }
}

/// 网格 a grid worker's area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Grid {
    /// Grid id, e.g. `G01`.
    #[key]
    pub id: String,
    /// Display name, e.g. `第一网格`.
    pub name: String,
    /// The grid worker in charge (网格员).
    pub worker: String,
}

/// 小区 a residential compound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Compound {
    /// Name, unique in the community, e.g. `幸福里小区`.
    #[key]
    pub name: String,
    /// Gated, half-open or open.
    pub kind: CompoundKind,
}

/// 社区 the community: one document with its grids, compounds and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Community {
    /// Community id (also every record's `scope.community`).
    pub id: String,
    /// Always [`Collection::Community`].
    pub collection: Collection,
    /// Community-wide scope.
    pub scope: Scope,
    /// 社区名称, e.g. `幸福社区`.
    pub name: String,
    /// 街道 the street office's area.
    pub street: String,
    /// 网格
    pub grids: Vec<Grid>,
    /// 小区
    pub compounds: Vec<Compound>,
    /// 诉求类别 with deadlines.
    pub request_categories: Vec<RequestCategory>,
    /// When the community was created.
    pub created: Timestamp,
}

impl Community {
    /// A new community with the default request categories (deadlines seen in practice).
    pub fn new(id: &str, name: &str, created: Timestamp) -> Community {
        Community {
            id: id.to_string(),
            collection: Collection::Community,
            scope: Scope::community(id),
            name: name.to_string(),
            street: String::new(),
            grids: Vec::new(),
            compounds: Vec::new(),
            request_categories: crate::request::default_categories(),
            created,
        }
    }
}

record_impl!(
    Community,
    Collection::Community,
    |s| s.name.clone(),
    |v, _today| {
        v.require("name", &s.name);
        for (i, g) in s.grids.iter().enumerate() {
            v.nested(&format!("grids[{i}]"), |v| v.require("id", &g.id));
        }
        for (i, c) in s.request_categories.iter().enumerate() {
            if c.deadline_hours == 0 {
                v.error(
                    &format!("request_categories[{i}].deadline_hours"),
                    "must be at least 1 hour",
                );
            }
        }
    }
);

/// 标准地址 a standard address: compound + building + unit + room.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Reconcile,
    specta::Type,
)]
pub struct Address {
    /// 小区
    pub compound: String,
    /// 楼栋, e.g. `3`
    pub building: String,
    /// 单元, e.g. `2`
    pub unit: String,
    /// 房屋 (room number, floor first), e.g. `501`
    pub room: String,
}

crate::hydrate::record_fields!(Address {
    compound,
    building,
    unit,
    room
});

impl Address {
    fn validate(&self, v: &mut crate::validate::Validator) {
        v.require("compound", &self.compound);
        v.require("building", &self.building);
        v.require("unit", &self.unit);
        v.require("room", &self.room);
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}栋{}单元{}室",
            self.compound, self.building, self.unit, self.room
        )
    }
}

/// An owner of a dwelling (业主), for owners' ballots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Owner {
    /// Stable key of the owner across dwellings (a buyer of several parts counts once in a
    /// ballot's headcount): a person id, or `developer` for unsold parts.
    #[key]
    pub key: String,
    /// Name as registered.
    pub name: String,
}

/// 户 a household and the dwelling it lives in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile)]
pub struct Household {
    /// Household id, e.g. `hh-000123`.
    pub id: String,
    /// Always [`Collection::Household`].
    pub collection: Collection,
    /// Community and grid.
    pub scope: Scope,
    /// 标准地址
    pub address: Address,
    /// 专有部分面积 registered exclusive floor area.
    pub area: Area,
    /// 用途
    pub usage: DwellingUse,
    /// 自住 / 出租 / 空置
    pub tenure: Tenure,
    /// 业主 owners of the dwelling.
    pub owners: Vec<Owner>,
    /// 户主 the head's person id.
    pub head: Option<String>,
    /// 成员 the people of the household (their sensitive fields are in [`Sensitive`]).
    pub members: Vec<Person>,
    /// Household tags (free-form).
    pub tags: Vec<String>,
    /// 备注
    pub notes: String,
    /// 最近走访 the day of the last visit.
    pub last_visit: Option<Day>,
}

crate::hydrate::record_fields!(Household {
    id,
    collection,
    scope,
    address,
    area,
    usage,
    tenure,
    owners,
    head,
    tags,
    notes,
    last_visit;
    members
});

impl Household {
    /// The member with this person id.
    pub fn member(&self, person: &str) -> Option<&Person> {
        self.members.iter().find(|m| m.id == person)
    }
    /// The head of household, if set and a member.
    pub fn head_person(&self) -> Option<&Person> {
        self.head.as_deref().and_then(|h| self.member(h))
    }
    /// Whether `person` must stay on this household for now: the head (户主) may not leave
    /// (move out, be recorded deceased, move elsewhere) while others still live in it; another
    /// member is made head first. The last one living there may leave. The one place this
    /// rule lives: the API refuses by it and the screens show it (`MemberView::may_leave`).
    pub fn head_must_stay(&self, person: &str) -> bool {
        self.head.as_deref() == Some(person)
            && self
                .members
                .iter()
                .any(|m| m.id != person && m.is_present())
    }
}

record_impl!(
    Household,
    Collection::Household,
    |s| s.address.to_string(),
    |v, today| {
        v.nested("address", |v| s.address.validate(v));
        crate::validate::check_tags(&mut v, "tags", &s.tags);
        if let Some(head) = &s.head
            && s.member(head).is_none()
        {
            v.error("head", "the head must be one of the members");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in s.members.iter().enumerate() {
            v.nested(&format!("members[{i}]"), |v| m.validate_into(v, today));
            if !seen.insert(m.id.as_str()) {
                v.error(&format!("members[{i}].id"), "is listed twice");
            }
        }
    }
);

/// 实有人口 a person, as a member of a household document. The sensitive fields (ID number,
/// phone, attention tags, health) are not here: they live in the household's [`Sensitive`]
/// document, so that they can be withheld from roles that may not see them, encrypted and
/// erased on their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile)]
pub struct Person {
    /// Person id, e.g. `p-0000123`: stable for life, even when the person moves household.
    #[key]
    pub id: String,
    /// 姓名
    pub name: String,
    /// 性别
    pub gender: Gender,
    /// 出生日期
    pub birth: Day,
    /// 与户主关系
    pub relation: Relation,
    /// 户籍 / 流动 / 寄住
    pub residence: Residence,
    /// 民族
    pub ethnicity: String,
    /// 迁入日期
    pub moved_in: Option<Day>,
    /// 迁出日期 (moved out: kept on the roster as history)
    pub moved_out: Option<Day>,
    /// 死亡日期
    pub deceased: Option<Day>,
    /// 工作单位
    pub workplace: String,
    /// 备注 (visit notes)
    pub notes: String,
}

crate::hydrate::record_fields!(Person {
    id,
    name,
    gender,
    birth,
    relation,
    residence,
    ethnicity,
    moved_in,
    moved_out,
    deceased,
    workplace,
    notes
});

impl Person {
    /// Whether the person still lives here (not moved out, not deceased).
    pub fn is_present(&self) -> bool {
        self.moved_out.is_none() && self.deceased.is_none()
    }

    fn validate_into(&self, v: &mut crate::validate::Validator, today: Day) {
        v.require("id", &self.id);
        v.require("name", &self.name);
        if self.name.chars().count() > 40 {
            v.error("name", "is longer than 40 characters");
        }
        if self.birth > today {
            v.error("birth", format!("{} is in the future", self.birth));
        }
        for (field, day) in [
            ("moved_in", self.moved_in),
            ("moved_out", self.moved_out),
            ("deceased", self.deceased),
        ] {
            if let Some(day) = day {
                if day < self.birth {
                    v.error(
                        field,
                        format!("{day} is before the birth date {}", self.birth),
                    );
                }
                if day > today {
                    v.error(field, format!("{day} is in the future"));
                }
            }
        }
        if let (Some(i), Some(o)) = (self.moved_in, self.moved_out)
            && o < i
        {
            v.error("moved_out", "is before moved_in");
        }
    }
}

/// The sensitive fields of a person (个人敏感信息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Reconcile)]
pub struct SensitiveFields {
    /// 证件类型
    pub id_type: IdType,
    /// 证件号码
    pub id_number: String,
    /// 联系电话
    pub phone: String,
    /// 重点人群 attention tags
    pub tags: Vec<String>,
    /// 健康状况
    pub health: String,
}

crate::hydrate::record_fields!(SensitiveFields {
    id_type,
    id_number,
    phone,
    tags,
    health
});

impl SensitiveFields {
    fn validate_into(&self, v: &mut crate::validate::Validator, person: &Person, today: Day) {
        match self.id_type {
            IdType::ResidentId => match parse_id_number(&self.id_number, today) {
                Err(e) => v.error("id_number", e),
                Ok(info) => {
                    if info.birth != person.birth {
                        v.error(
                            "id_number",
                            "its birth date part (characters 7-14) differs from the person's \
                             birth date",
                        );
                    }
                    let sex = match person.gender {
                        Gender::Male => IdSex::Male,
                        Gender::Female => IdSex::Female,
                    };
                    if info.sex != sex {
                        v.error(
                            "id_number",
                            format!(
                                "its sequence digit says {}, the person is {}",
                                if info.sex == IdSex::Male {
                                    "male"
                                } else {
                                    "female"
                                },
                                person.gender.en()
                            ),
                        );
                    }
                }
            },
            _ => {
                let n = self.id_number.trim();
                if n.len() < 5 || n.len() > 30 {
                    v.error("id_number", "must have 5 to 30 characters");
                }
            }
        }
        if !self.phone.trim().is_empty() {
            v.check("phone", check_phone(&self.phone));
        }
        crate::validate::check_tags(v, "tags", &self.tags);
        // Every text, named under the member (`members[2].health`).
        match serde_json::to_value(self) {
            Ok(value) => crate::validate::check_texts(v, &value),
            Err(e) => v.error("", format!("cannot be read as JSON: {e}")),
        }
    }
}

/// A household's sensitive document (id `<household id>.pii`): each member's
/// [`SensitiveFields`] by person id. A map, so that concurrent edits of different people (and
/// of different fields of one person) merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile)]
pub struct Sensitive {
    /// Document id: `<household id>.pii`.
    pub id: String,
    /// Always [`Collection::Sensitive`].
    pub collection: Collection,
    /// Same scope as the household.
    pub scope: Scope,
    /// The household id.
    pub household: String,
    /// Person id → sensitive fields.
    pub people: BTreeMap<String, SensitiveFields>,
}

crate::hydrate::record_fields!(Sensitive {
    id,
    collection,
    scope,
    household;
    people
});

impl Sensitive {
    /// The document id of a household's sensitive part.
    pub fn doc_id(household: &str) -> String {
        format!("{household}.pii")
    }
    /// An empty sensitive document for a household.
    pub fn for_household(h: &Household) -> Sensitive {
        Sensitive {
            id: Sensitive::doc_id(&h.id),
            collection: Collection::Sensitive,
            scope: h.scope.clone(),
            household: h.id.clone(),
            people: BTreeMap::new(),
        }
    }
}

record_impl!(
    Sensitive,
    Collection::Sensitive,
    |s| s.household.clone(),
    |v, _today| {
        if s.id != Sensitive::doc_id(&s.household) {
            v.error("id", "must be the household id followed by .pii");
        }
    }
);

/// A whole person as screens, imports and edits see it: the household it belongs to, the
/// [`Person`] and the [`SensitiveFields`], flattened into one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// The household id.
    pub household: String,
    /// The household's scope.
    pub scope: Scope,
    /// The non-sensitive part.
    #[serde(flatten)]
    pub person: Person,
    /// The sensitive part.
    #[serde(flatten)]
    pub sensitive: SensitiveFields,
}

impl PersonRecord {
    /// Validates both parts and their consistency: an 18-digit ID number must carry the
    /// person's birth date and a sequence digit of the person's sex.
    pub fn validate(&self, today: Day) -> Result<(), ValidationErrors> {
        let mut v = crate::validate::Validator::new();
        v.require("household", &self.household);
        self.person.validate_into(&mut v, today);
        match serde_json::to_value(&self.person) {
            Ok(value) => crate::validate::check_texts(&mut v, &value),
            Err(e) => v.error("", format!("cannot be read as JSON: {e}")),
        }
        self.sensitive.validate_into(&mut v, &self.person, today);
        v.finish()
    }
}

/// Validates a household with its sensitive document: every member, their sensitive fields
/// (named `members[i].id_number` …), and that the two documents describe the same people.
pub fn validate_household(
    h: &Household,
    s: &Sensitive,
    today: Day,
) -> Result<(), ValidationErrors> {
    let mut v = crate::validate::Validator::new();
    if let Err(e) = crate::Record::validate(h, today) {
        for fe in e.0 {
            v.error(&fe.field, fe.message);
        }
    }
    if s.household != h.id || s.id != Sensitive::doc_id(&h.id) {
        v.error("id", "the sensitive document belongs to another household");
    }
    if s.scope != h.scope {
        v.error(
            "scope",
            "the sensitive document is in another scope than its household",
        );
    }
    for (i, m) in h.members.iter().enumerate() {
        match s.people.get(&m.id) {
            Some(f) => v.nested(&format!("members[{i}]"), |v| f.validate_into(v, m, today)),
            None => v.error(
                &format!("members[{i}]"),
                "has no sensitive fields (ID type and number)",
            ),
        }
    }
    for id in s.people.keys() {
        if !h.members.iter().any(|m| &m.id == id) {
            v.error(
                "members",
                format!("sensitive fields for {id}, who is not a member"),
            );
        }
    }
    v.finish()
}

/// 实有单位 an organisation at an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Organisation {
    /// Organisation id, e.g. `org-0012`.
    pub id: String,
    /// Always [`Collection::Organisation`].
    pub collection: Collection,
    /// Community and grid.
    pub scope: Scope,
    /// 单位名称
    pub name: String,
    /// 统一社会信用代码 (GB 32100), empty when the organisation has none (e.g. a stall).
    pub credit_code: String,
    /// 单位类型
    pub kind: OrgKind,
    /// 地址
    pub address: Address,
    /// 联系人
    pub contact_name: String,
    /// 联系电话 (sensitive: masked on screen)
    pub contact_phone: String,
    /// 备注
    pub notes: String,
}

record_impl!(
    Organisation,
    Collection::Organisation,
    |s| s.name.clone(),
    |v, _today| {
        v.require("name", &s.name);
        if !s.credit_code.trim().is_empty() {
            v.check("credit_code", check_credit_code(&s.credit_code));
        }
        v.nested("address", |v| s.address.validate(v));
        if !s.contact_phone.trim().is_empty() {
            v.check("contact_phone", check_phone(&s.contact_phone));
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Day {
        Day::ymd(2026, 11, 24).unwrap()
    }

    fn person(id_number: &str, gender: Gender, birth: Day) -> PersonRecord {
        PersonRecord {
            household: "hh-1".into(),
            scope: Scope::grid("c1", "G01"),
            person: Person {
                id: "p-1".into(),
                name: "张伟".into(),
                gender,
                birth,
                relation: Relation::Head,
                residence: Residence::Registered,
                ethnicity: "汉族".into(),
                moved_in: None,
                moved_out: None,
                deceased: None,
                workplace: String::new(),
                notes: String::new(),
            },
            sensitive: SensitiveFields {
                id_type: IdType::ResidentId,
                id_number: id_number.into(),
                phone: "13812345678".into(),
                tags: vec![],
                health: String::new(),
            },
        }
    }

    fn household(members: Vec<Person>) -> Household {
        Household {
            id: "hh-1".into(),
            collection: Collection::Household,
            scope: Scope::grid("c1", "G01"),
            address: Address {
                compound: "幸福里".into(),
                building: "1".into(),
                unit: "1".into(),
                room: "101".into(),
            },
            area: Area(8000),
            usage: DwellingUse::Residential,
            tenure: Tenure::OwnerOccupied,
            owners: vec![],
            head: Some("p-1".into()),
            members,
            tags: vec![],
            notes: String::new(),
            last_visit: None,
        }
    }

    #[test]
    fn id_number_must_match_birth_and_sex() {
        let birth = Day::ymd(1949, 12, 31).unwrap();
        assert!(
            person("11010519491231002X", Gender::Female, birth)
                .validate(today())
                .is_ok()
        );
        let e = person("11010519491231002X", Gender::Male, birth)
            .validate(today())
            .unwrap_err();
        assert!(
            e.has("id_number") && e.to_string().contains("sequence digit"),
            "{e}"
        );
        let e = person(
            "11010519491231002X",
            Gender::Female,
            Day::ymd(1950, 1, 1).unwrap(),
        )
        .validate(today())
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("differs from the person's birth date"),
            "{e}"
        );
        let e = person("110105194912310021", Gender::Female, birth)
            .validate(today())
            .unwrap_err();
        assert_eq!(e.first_field(), "id_number");
    }

    #[test]
    fn required_fields_and_phone_are_named() {
        let mut p = person(
            "11010519491231002X",
            Gender::Female,
            Day::ymd(1949, 12, 31).unwrap(),
        );
        p.person.name = " ".into();
        p.sensitive.phone = "123".into();
        let e = p.validate(today()).unwrap_err();
        assert!(e.has("name") && e.has("phone"), "{e}");
    }

    #[test]
    fn person_record_json_is_flat_and_round_trips() {
        let p = person(
            "11010519491231002X",
            Gender::Female,
            Day::ymd(1949, 12, 31).unwrap(),
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["name"], "张伟");
        assert_eq!(v["id_number"], "11010519491231002X");
        assert_eq!(v["gender"], "female");
        let back: PersonRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn household_validation_names_the_member_field() {
        let p = person(
            "11010519491231002X",
            Gender::Female,
            Day::ymd(1949, 12, 31).unwrap(),
        );
        let h = household(vec![p.person.clone()]);
        let mut s = Sensitive::for_household(&h);
        s.people.insert("p-1".into(), p.sensitive.clone());
        assert!(validate_household(&h, &s, today()).is_ok());
        s.people.get_mut("p-1").unwrap().id_number = "110105194912310021".into();
        let e = validate_household(&h, &s, today()).unwrap_err();
        assert_eq!(e.first_field(), "members[0].id_number", "{e}");
        s.people.clear();
        assert_eq!(
            validate_household(&h, &s, today())
                .unwrap_err()
                .first_field(),
            "members[0]"
        );
    }

    /// Two replicas edit the same household offline; the merge keeps every edit, per member
    /// and per field, and the sensitive document merges per person and field.
    #[test]
    fn concurrent_edits_merge_on_two_replicas() {
        use autosurgeon::{hydrate, reconcile};
        let p = person(
            "11010519491231002X",
            Gender::Female,
            Day::ymd(1949, 12, 31).unwrap(),
        );
        let mut second = p.person.clone();
        second.id = "p-2".into();
        second.name = "李娜".into();
        second.relation = Relation::Child;
        let h = household(vec![p.person.clone(), second]);
        let mut s = Sensitive::for_household(&h);
        s.people.insert("p-1".into(), p.sensitive.clone());
        let mut hd_a = automerge::AutoCommit::new();
        reconcile(&mut hd_a, &h).unwrap();
        let mut sd_a = automerge::AutoCommit::new();
        reconcile(&mut sd_a, &s).unwrap();
        let mut hd_b = hd_a.fork().with_actor(automerge::ActorId::random());
        let mut sd_b = sd_a.fork().with_actor(automerge::ActorId::random());

        // Replica A (the office): renames member 1, adds a member, changes the phone.
        let mut a: Household = hydrate(&hd_a).unwrap();
        a.members[0].name = "张薇".into();
        let mut baby = a.members[1].clone();
        baby.id = "p-3".into();
        baby.name = "张小宝".into();
        a.members.push(baby);
        reconcile(&mut hd_a, &a).unwrap();
        let mut sa: Sensitive = hydrate(&sd_a).unwrap();
        sa.people.get_mut("p-1").unwrap().phone = "13900001111".into();
        reconcile(&mut sd_a, &sa).unwrap();
        // Replica B (a tablet, offline): notes on member 2, the tenure, a tag on member 1.
        let mut b: Household = hydrate(&hd_b).unwrap();
        b.members[1].notes = "2026-03-05 入户走访".into();
        b.tenure = Tenure::Rented;
        reconcile(&mut hd_b, &b).unwrap();
        let mut sb: Sensitive = hydrate(&sd_b).unwrap();
        sb.people.get_mut("p-1").unwrap().tags = vec!["独居老人".into()];
        reconcile(&mut sd_b, &sb).unwrap();

        hd_a.merge(&mut hd_b).unwrap();
        sd_a.merge(&mut sd_b).unwrap();
        let merged: Household = hydrate(&hd_a).unwrap();
        assert_eq!(
            merged
                .members
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["p-1", "p-2", "p-3"]
        );
        assert_eq!(merged.members[0].name, "张薇");
        assert_eq!(merged.members[1].notes, "2026-03-05 入户走访");
        assert_eq!(merged.tenure, Tenure::Rented);
        let ms: Sensitive = hydrate(&sd_a).unwrap();
        assert_eq!(ms.people["p-1"].phone, "13900001111");
        assert_eq!(ms.people["p-1"].tags, vec!["独居老人".to_string()]);
        // Both replicas converge to the same state.
        hd_b.merge(&mut hd_a).unwrap();
        assert_eq!(hydrate::<_, Household>(&hd_b).unwrap(), merged);
    }

    #[test]
    fn the_head_stays_while_others_live_in_the_household() {
        let member = |id: &str| {
            let mut p = person("11010119900307001X", Gender::Male, today()).person;
            p.id = id.into();
            p
        };
        let mut h = household(vec![member("a"), member("b")]);
        h.head = Some("a".into());
        assert!(h.head_must_stay("a"));
        assert!(!h.head_must_stay("b"), "others may leave");
        h.members[1].moved_out = Some(Day::parse("2026-01-01").unwrap_or_else(|e| panic!("{e}")));
        assert!(
            !h.head_must_stay("a"),
            "the last one living there may leave"
        );
    }
}
