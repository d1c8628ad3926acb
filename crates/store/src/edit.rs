//! Editing one field of a record by path (`phone`, `tenure`, `checklist[1].ok`), validated
//! with the domain's rules before anything is written.

use linli_domain::{AnyRecord, Collection, PersonRecord, validate_household};
use serde_json::Value;

use crate::error::shown;
use crate::store::WriteReport;
use crate::{Store, StoreError};

/// Fields no edit may change: identity and replication scope.
const READ_ONLY: &[&str] = &[
    "id",
    "collection",
    "scope",
    "household",
    "members",
    "steps",
    "votes",
];

/// A field path: `checklist[1].ok` or `checklist.1.ok` → [`checklist`, `1`, `ok`].
fn segments(path: &str) -> Vec<String> {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn field_err(id: &str, field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Field {
        id: shown(id),
        field: shown(field),
        message: message.into(),
    }
}

/// Turns the text given on the command line into a JSON value shaped like `current`.
fn coerce(current: &Value, raw: &str) -> Result<Value, String> {
    let t = raw.trim();
    if matches!(t, "null" | "none" | "无") && !current.is_string() {
        return Ok(Value::Null);
    }
    Ok(match current {
        Value::String(_) => Value::String(raw.to_string()),
        Value::Bool(_) => match t {
            "true" | "yes" | "是" | "1" | "ok" => Value::Bool(true),
            "false" | "no" | "否" | "0" => Value::Bool(false),
            _ => return Err("is not true or false (是/否)".into()),
        },
        Value::Number(_) => serde_json::from_str(t).map_err(|_| "is not a number".to_string())?,
        Value::Array(_) if !t.starts_with('[') => Value::Array(
            t.split([',', '，', '、'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Null => serde_json::from_str(t).unwrap_or_else(|_| Value::String(raw.to_string())),
        _ => serde_json::from_str(t).map_err(|e| {
            format!(
                "expected JSON: {}",
                linli_domain::interchange::value_free(&e.to_string())
            )
        })?,
    })
}

/// Sets `path` in `root` to the coerced `raw`; the path must already exist.
fn set_path(
    id: &str,
    root: &mut Value,
    path: &[String],
    field: &str,
    raw: &str,
) -> Result<(), StoreError> {
    let mut cur = root;
    for (i, seg) in path.iter().enumerate() {
        let here = path[..=i].join(".");
        let next = match cur {
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                map.get_mut(seg).ok_or_else(|| {
                    field_err(
                        id,
                        field,
                        format!(
                            "no field `{}`; fields here: {}",
                            shown(&here),
                            keys.join(", ")
                        ),
                    )
                })?
            }
            Value::Array(items) => {
                let n = items.len();
                let idx: usize = seg.parse().map_err(|_| {
                    field_err(id, field, format!("`{}` is not a list index", shown(&here)))
                })?;
                items.get_mut(idx).ok_or_else(|| {
                    field_err(
                        id,
                        field,
                        format!("index {} is past the end ({n} items)", shown(seg)),
                    )
                })?
            }
            _ => {
                return Err(field_err(
                    id,
                    field,
                    format!("`{}` has no fields", path[..i].join(".")),
                ));
            }
        };
        cur = next;
    }
    *cur = coerce(cur, raw).map_err(|m| field_err(id, field, m))?;
    Ok(())
}

/// Deserializes the edited JSON; an error names the field (the edited one when serde cannot
/// tell, as through `#[serde(flatten)]`).
fn from_json<T: serde::de::DeserializeOwned>(
    id: &str,
    field: &str,
    v: Value,
) -> Result<T, StoreError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let msg = e.inner().to_string();
        // Without the value it quotes: a phone typed into another field stays out of it.
        let msg =
            linli_domain::interchange::value_free(msg.split(" at line ").next().unwrap_or(""));
        let path = e.path().to_string();
        field_err(
            id,
            if path == "." || path.is_empty() {
                field
            } else {
                &path
            },
            msg,
        )
    })
}

impl Store {
    /// Sets one field of a record (a person id edits the person, including their sensitive
    /// fields) and writes the change if the result is valid: read, checked and written in one
    /// transaction.
    pub fn edit(&mut self, id: &str, field: &str, raw: &str) -> Result<WriteReport, StoreError> {
        self.writing(|store, tx| store.edit_in(tx, id, field, raw))
    }

    fn edit_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: &str,
        field: &str,
        raw: &str,
    ) -> Result<WriteReport, StoreError> {
        let path = segments(field);
        let Some(top) = path.first() else {
            return Err(field_err(id, field, "no field given"));
        };
        if READ_ONLY.contains(&top.as_str()) {
            return Err(field_err(id, field, "cannot be edited this way"));
        }
        let today = linli_domain::today();
        let message = format!("edit {field}");
        match self.collection_of(id)? {
            Some(Collection::Sensitive) => {
                Err(field_err(id, field, "edit the person (their id) instead"))
            }
            Some(Collection::Household) => {
                let (h, s) = self
                    .household(id)?
                    .ok_or_else(|| StoreError::NotFound(id.into()))?;
                let mut v =
                    serde_json::to_value(&h).map_err(|e| field_err(id, field, e.to_string()))?;
                set_path(id, &mut v, &path, field, raw)?;
                let h = from_json(id, field, v)?;
                validate_household(&h, &s, today).map_err(|errors| StoreError::Invalid {
                    id: id.into(),
                    errors,
                })?;
                self.write(tx, vec![AnyRecord::Household(h)], &message)
            }
            Some(collection) => {
                let rec = self
                    .get(id)?
                    .ok_or_else(|| StoreError::NotFound(id.into()))?;
                let mut v =
                    serde_json::to_value(&rec).map_err(|e| field_err(id, field, e.to_string()))?;
                set_path(id, &mut v, &path, field, raw)?;
                let rec = typed(id, field, collection, v)?;
                rec.validate(today).map_err(|errors| StoreError::Invalid {
                    id: id.into(),
                    errors,
                })?;
                self.write(tx, vec![rec], &message)
            }
            None => {
                let household = self
                    .household_of(id)?
                    .ok_or_else(|| StoreError::NotFound(id.into()))?;
                let (mut h, mut s) = self
                    .household(&household)?
                    .ok_or_else(|| StoreError::NotFound(household.clone()))?;
                let person = crate::query::person_of(&h, &s, id)
                    .ok_or_else(|| StoreError::NotFound(id.into()))?;
                let mut v = serde_json::to_value(&person)
                    .map_err(|e| field_err(id, field, e.to_string()))?;
                set_path(id, &mut v, &path, field, raw)?;
                let person: PersonRecord = from_json(id, field, v)?;
                person
                    .validate(today)
                    .map_err(|errors| StoreError::Invalid {
                        id: id.into(),
                        errors,
                    })?;
                if let Some(m) = h.members.iter_mut().find(|m| m.id == id) {
                    *m = person.person.clone();
                }
                s.people.insert(id.to_string(), person.sensitive.clone());
                validate_household(&h, &s, today).map_err(|errors| StoreError::Invalid {
                    id: id.into(),
                    errors,
                })?;
                self.write(
                    tx,
                    vec![AnyRecord::Household(h), AnyRecord::Sensitive(s)],
                    &message,
                )
            }
        }
    }
}

/// Deserializes a record of `collection`, naming the field that does not fit.
fn typed(id: &str, field: &str, collection: Collection, v: Value) -> Result<AnyRecord, StoreError> {
    macro_rules! typed_as {
        ($($c:ident => $ty:ty),+) => {
            match collection {
                $(Collection::$c => from_json::<$ty>(id, field, v).map(AnyRecord::$c),)+
                other => Err(field_err(id, "collection", format!("{} records are not edited directly", other.code()))),
            }
        };
    }
    typed_as!(
        Community => linli_domain::Community,
        Organisation => linli_domain::Organisation,
        Visit => linli_domain::Visit,
        Task => linli_domain::Task,
        Request => linli_domain::ServiceRequest,
        Post => linli_domain::HelpPost,
        Notice => linli_domain::Notice,
        Ballot => linli_domain::Ballot
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_coerced_to_the_field_type() {
        assert_eq!(
            coerce(&Value::Bool(false), "是").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            coerce(&serde_json::json!(["a"]), "独居老人，低保").unwrap(),
            serde_json::json!(["独居老人", "低保"])
        );
        assert_eq!(
            coerce(&Value::String("x".into()), "13800138000").unwrap(),
            Value::String("13800138000".into())
        );
        assert_eq!(coerce(&Value::Null, "none").unwrap(), Value::Null);
        assert!(coerce(&Value::Bool(true), "maybe").is_err());
        assert_eq!(segments("checklist[1].ok"), ["checklist", "1", "ok"]);
    }

    /// Found by the hardening review: `linli edit P gender 13812345678` said "unknown value
    /// 13812345678".
    #[test]
    fn a_value_in_the_wrong_field_is_not_repeated() {
        for (current, raw) in [
            (Value::Bool(true), "13812345678"),
            (serde_json::json!(1), "1381234x5678"),
            (serde_json::json!({"a": 1}), "{13812345678"),
        ] {
            let e = coerce(&current, raw).unwrap_err();
            assert!(!e.contains("5678"), "{e}");
        }
    }
}
