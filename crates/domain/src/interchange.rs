//! The JSON Lines interchange format: one record per line.
//!
//! Two shapes are accepted:
//! - the roster format of the benchmark generator (`gen_community.py`): `{"kind":"household",
//!   …, "members":[…]}` and `{"kind":"task", …}`, in which a household carries its members
//!   with their ID numbers and phones;
//! - any record as Linli prints it with `--json` (it has a `collection` field), e.g. a notice
//!   or a service request.
//!
//! [`parse_line`] turns a line into the documents it is stored as and validates them; its
//! errors name the field (`members[2].id_number`) so that the caller can add the line number.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::roster::{DwellingUse, Owner, validate_household};
use crate::validate::{FieldError, ValidationErrors};
use crate::value::{Area, Day};
use crate::work::{ChecklistItem, TaskStatus};
use crate::{
    AnyRecord, Collection, Gender, Household, IdType, Person, Record, Relation, Residence, Scope,
    Sensitive, SensitiveFields, Task, Tenure,
};

/// A line that could not be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but a field has the wrong type or value.
    #[error("field `{field}`: {message}")]
    Field {
        /// Path of the field, e.g. `members[2].birth`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Well-formed, but breaks a rule.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

impl LineError {
    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            LineError::Json(_) => None,
            LineError::Field { field, .. } => Some(field),
            LineError::Invalid(e) => e.0.first().map(|f| f.field.as_str()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenPerson {
    id: String,
    name: String,
    gender: Gender,
    birth: Day,
    id_number: String,
    phone: String,
    relation: Relation,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenHousehold {
    #[allow(dead_code)]
    kind: String,
    id: String,
    grid: String,
    compound: String,
    building: String,
    unit: String,
    room: String,
    area_m2: Area,
    tenure: Tenure,
    members: Vec<GenPerson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenCheck {
    item: String,
    ok: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenTask {
    #[allow(dead_code)]
    kind: String,
    id: String,
    grid: String,
    title: String,
    building: String,
    due: Option<Day>,
    status: TaskStatus,
    checklist: Vec<GenCheck>,
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, LineError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = value_free_path(e.path());
        let message = e.inner().to_string();
        // serde_json appends " at line 1 column N" to some messages; drop it, the caller
        // reports the line.
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        LineError::Field {
            field,
            message: value_free(&message),
        }
    })
}

/// A field path as the decoder gives it (`members[2].birth`), with every key that is not a name
/// of ours left out (`?`): an unknown key is whatever the file held there, and may be a
/// resident's number pasted into a header (found by fuzzing).
fn value_free_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_field_name(key) { key } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// A field name or code of ours: a lower-case word, not a number (a phone in a header row) nor
/// anything else a person typed.
fn is_field_name(quoted: &str) -> bool {
    quoted.len() <= 40
        && quoted.starts_with(|q: char| q.is_ascii_lowercase())
        && quoted
            .chars()
            .all(|q| q.is_ascii_lowercase() || q.is_ascii_digit() || q == '_')
        && quoted.chars().filter(char::is_ascii_digit).count() < 4
}

/// A decoder's message without the value it quotes: serde says ``invalid type: integer
/// `16958092444`, expected a string`` or `` unknown variant `13812345678` ``, and the value
/// may be a phone or an ID number in the wrong column (spreadsheets export them as numbers).
/// What stands between backticks or double quotes is left out, except a lower-case word with
/// fewer than four digits (a field name or a code: `missing field `phone``).
pub fn value_free(message: &str) -> String {
    // Unknown keys and variants are quoted raw, backticks and all: only the list of what was
    // expected (made from our own names, at the end) is kept (found by fuzzing).
    for unknown in ["unknown field", "unknown variant"] {
        if let Some(rest) = message.strip_prefix(unknown) {
            return match rest.rfind(", expected ") {
                Some(i) => no_long_numbers(&format!("{unknown}{}", &rest[i..])),
                None => unknown.to_string(),
            };
        }
    }
    no_long_numbers(&quoted_values_left_out(message))
}

/// Runs of seven digits or more (a phone, an ID number) replaced by `…`: the last guard of a
/// message built from a decoder's text.
fn no_long_numbers(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut run = String::new();
    for c in message.chars().chain(std::iter::once('\u{0}')) {
        if c.is_ascii_digit() {
            run.push(c);
            continue;
        }
        if run.len() >= 7 {
            out.push('…');
        } else {
            out.push_str(&run);
        }
        run.clear();
        if c != '\u{0}' {
            out.push(c);
        }
    }
    out
}

/// What stands between backticks or double quotes left out, except field names of ours.
fn quoted_values_left_out(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '`' && c != '"' {
            out.push(c);
            continue;
        }
        let mut quoted = String::new();
        let mut escaped = false;
        for q in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if q == '\\' {
                escaped = true;
                continue;
            } else if q == c {
                break;
            }
            quoted.push(q);
        }
        if is_field_name(&quoted) {
            out.push(c);
            out.push_str(&quoted);
            out.push(c);
        } else if out.ends_with(' ') {
            out.pop();
        }
    }
    out
}

/// Turns one line into the records it is stored as, validated. `community` becomes every
/// record's `scope.community`.
pub fn parse_line(line: &str, community: &str, today: Day) -> Result<Vec<AnyRecord>, LineError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| LineError::Json(value_free(&e.to_string())))?;
    // Linli's own records carry `collection`; the roster format carries `kind` instead.
    let kind = match value.get("collection") {
        Some(_) => None,
        None => value
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_owned),
    };
    match kind.as_deref() {
        Some("household") => {
            let (h, s) = household(typed(value)?, community);
            validate_household(&h, &s, today).map_err(LineError::Invalid)?;
            Ok(vec![AnyRecord::Household(h), AnyRecord::Sensitive(s)])
        }
        Some("task") => {
            let t = task(typed(value)?, community);
            t.validate(today).map_err(LineError::Invalid)?;
            Ok(vec![AnyRecord::Task(t)])
        }
        Some(_) => Err(LineError::Field {
            field: "kind".into(),
            message: "is not household or task".into(),
        }),
        None => {
            let collection = value
                .get("collection")
                .and_then(|c| c.as_str())
                .ok_or_else(|| LineError::Field {
                    field: "kind".into(),
                    message: "a line needs `kind` (household, task) or `collection`".into(),
                })?;
            let collection = Collection::parse(collection).ok_or_else(|| LineError::Field {
                field: "collection".into(),
                message: format!("is not one of: {}", Collection::expected()),
            })?;
            let mut record = match collection {
                Collection::Household | Collection::Sensitive | Collection::Person => {
                    return Err(LineError::Field {
                        field: "collection".into(),
                        message: "households are imported in the roster format (`kind: household` with members)".into(),
                    });
                }
                Collection::Community => AnyRecord::Community(typed(value)?),
                Collection::Organisation => AnyRecord::Organisation(typed(value)?),
                Collection::Visit => AnyRecord::Visit(typed(value)?),
                Collection::Task => AnyRecord::Task(typed(value)?),
                Collection::Request => AnyRecord::Request(typed(value)?),
                Collection::Post => AnyRecord::Post(typed(value)?),
                Collection::Notice => AnyRecord::Notice(typed(value)?),
                Collection::Ballot => AnyRecord::Ballot(typed(value)?),
            };
            if record.scope().community != community {
                if record.collection() == Collection::Community {
                    return Err(LineError::Field {
                        field: "id".into(),
                        message: format!("this store's community is {community}"),
                    });
                }
                record.set_community(community);
            }
            record.validate(today).map_err(LineError::Invalid)?;
            Ok(vec![record])
        }
    }
}

fn household(g: GenHousehold, community: &str) -> (Household, Sensitive) {
    let scope = Scope::grid(community, g.grid);
    let head = g
        .members
        .iter()
        .find(|m| m.relation == Relation::Head)
        .or(g.members.first())
        .map(|m| m.id.clone());
    let mut people = BTreeMap::new();
    let members: Vec<Person> = g
        .members
        .into_iter()
        .map(|m| {
            let residence = if m.tags.iter().any(|t| t == "流动人口") {
                Residence::Floating
            } else {
                Residence::Registered
            };
            people.insert(
                m.id.clone(),
                SensitiveFields {
                    id_type: IdType::ResidentId,
                    id_number: m.id_number,
                    phone: m.phone,
                    tags: m.tags,
                    health: String::new(),
                },
            );
            Person {
                id: m.id,
                name: m.name,
                gender: m.gender,
                birth: m.birth,
                relation: m.relation,
                residence,
                ethnicity: String::new(),
                moved_in: None,
                moved_out: None,
                deceased: None,
                workplace: String::new(),
                notes: m.notes,
            }
        })
        .collect();
    let owners = match (
        g.tenure,
        members.iter().find(|m| Some(&m.id) == head.as_ref()),
    ) {
        (Tenure::OwnerOccupied, Some(h)) => vec![Owner {
            key: h.id.clone(),
            name: h.name.clone(),
        }],
        _ => vec![],
    };
    let h = Household {
        id: g.id,
        collection: Collection::Household,
        scope,
        address: crate::Address {
            compound: g.compound,
            building: g.building,
            unit: g.unit,
            room: g.room,
        },
        area: g.area_m2,
        usage: DwellingUse::Residential,
        tenure: g.tenure,
        owners,
        head,
        members,
        tags: vec![],
        notes: String::new(),
        last_visit: None,
    };
    let mut s = Sensitive::for_household(&h);
    s.people = people;
    (h, s)
}

fn task(g: GenTask, community: &str) -> Task {
    // Titles read `<template> <compound><building>栋`.
    let (kind, place) = g.title.split_once(' ').unwrap_or((g.title.as_str(), ""));
    let suffix = format!("{}栋", g.building);
    let compound = place.strip_suffix(&suffix).unwrap_or("").to_string();
    Task {
        id: g.id,
        collection: Collection::Task,
        scope: Scope::grid(community, g.grid),
        kind: kind.to_string(),
        compound,
        building: g.building,
        due: g.due,
        status: g.status,
        assignee: String::new(),
        checklist: g
            .checklist
            .into_iter()
            .enumerate()
            .map(|(i, c)| ChecklistItem {
                id: format!("c{}", i + 1),
                item: c.item,
                ok: c.ok,
                note: String::new(),
                photos: vec![],
                request: None,
            })
            .collect(),
        notes: String::new(),
        title: g.title,
    }
}

impl From<FieldError> for LineError {
    fn from(e: FieldError) -> Self {
        LineError::Invalid(ValidationErrors(vec![e]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"household","id":"hh-000001","grid":"G01","compound":"幸福里小区","building":"1","unit":"1","room":"101","area_m2":87.35,"tenure":"自住","members":[{"id":"p-0000001","name":"张伟","gender":"男","birth":"1980-01-01","id_number":"320106198001010011","phone":"13812345678","relation":"户主","tags":[],"notes":""}]}"#;

    fn today() -> Day {
        Day::ymd(2026, 11, 24).unwrap()
    }

    #[test]
    fn a_generator_household_becomes_two_documents() {
        let recs = parse_line(LINE, "c-1", today()).unwrap();
        let [AnyRecord::Household(h), AnyRecord::Sensitive(s)] = recs.as_slice() else {
            panic!()
        };
        assert_eq!(h.area, Area(8735));
        assert_eq!(h.head.as_deref(), Some("p-0000001"));
        assert_eq!(h.scope, Scope::grid("c-1", "G01"));
        assert_eq!(s.people["p-0000001"].phone, "13812345678");
        assert_eq!(h.owners.len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = LINE.replace("\"birth\":\"1980-01-01\"", "\"birth\":\"1980-13-01\"");
        let e = parse_line(&bad, "c", today()).unwrap_err();
        assert_eq!(e.field(), Some("members[0].birth"), "{e}");
        let bad = LINE.replace("320106198001010011", "320106198001010012");
        let e = parse_line(&bad, "c", today()).unwrap_err();
        assert_eq!(e.field(), Some("members[0].id_number"), "{e}");
        assert!(e.to_string().contains("check digit"), "{e}");
        assert!(
            !e.to_string().contains("320106198001010012"),
            "errors never echo an ID number"
        );
        let bad = LINE.replace("\"tenure\":\"自住\"", "\"tenure\":\"借住\"");
        assert_eq!(
            parse_line(&bad, "c", today()).unwrap_err().field(),
            Some("tenure")
        );
        assert!(matches!(
            parse_line("{oops", "c", today()),
            Err(LineError::Json(_))
        ));
    }

    /// Found by the hardening review: a phone or ID number given as a JSON number (as
    /// spreadsheets export them), or in the wrong field, came back whole in the error.
    #[test]
    fn errors_never_repeat_a_value_given_in_the_wrong_form_or_field() {
        let cases = [
            LINE.replace("\"phone\":\"13812345678\"", "\"phone\":16958092444"),
            LINE.replace("\"320106198001010011\"", "320106198001010011"),
            LINE.replace("\"gender\":\"男\"", "\"gender\":\"13812345678\""),
            LINE.replace("\"tenure\":\"自住\"", "\"tenure\":\"320106198001010011\""),
            LINE.replace("\"birth\":\"1980-01-01\"", "\"birth\":\"13812345678\""),
            LINE.replace("\"area_m2\":87.35", "\"area_m2\":13812345678"),
            LINE.replace("\"relation\":\"户主\"", "\"relation\":[\"13812345678\"]"),
            LINE.replace("\"kind\":\"household\"", "\"kind\":\"13812345678\""),
        ];
        for line in cases {
            let e = parse_line(&line, "c", today()).unwrap_err().to_string();
            for secret in [
                "16958092444",
                "13812345678",
                "320106198001010011",
                "5678",
                "0011",
            ] {
                assert!(!e.contains(secret), "{e}");
            }
            assert!(e.contains("field") || e.contains("members"), "{e}");
        }
        assert_eq!(
            value_free("invalid type: integer `16958092444`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(value_free("missing field `phone`"), "missing field `phone`");
        // An unknown key is left out of the path too (found by fuzzing).
        let e = parse_line(
            r#"{"kind":"household","id":"hh-1","grid":"G01","compound":"a","building":"1","unit":"1","room":"1","area_m2":1,"tenure":"自住","members":[{"id":"p-1","name":"王","gender":"男","birth":"1981-12-03","id_number":"320106198112039810","phone":"16628794596","relation":"户主","tags":[],"notes":"","un3201061954it":1}]}"#,
            "c",
            today(),
        )
        .map(|_| ())
        .map_or_else(|e| e.to_string(), |()| String::new());
        assert!(e.starts_with("field `members[0].?`"), "{e}");
        assert!(!e.contains("3201061954"), "{e}");
        assert_eq!(
            value_free("unknown field `13812345678`, expected `id`"),
            "unknown field, expected `id`"
        );
        assert_eq!(
            value_free(r#"invalid type: string "a\"b`c", expected u8"#),
            "invalid type: string, expected u8"
        );
    }

    proptest::proptest! {
        /// Any line: records or an error, never a panic; an error never holds a run of
        /// digits the line held.
        #[test]
        fn any_line_parses_or_errs_without_echo(line in "\\PC{0,200}", n in 10_000_000u64..99_999_999_999) {
            let _ = parse_line(&line, "c", today());
            let with_number = LINE.replace("\"13812345678\"", &n.to_string());
            if let Err(e) = parse_line(&with_number, "c", today()) {
                proptest::prop_assert!(!e.to_string().contains(&n.to_string()), "{}", e);
            }
        }
    }
}
