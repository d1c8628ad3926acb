//! Reading for screens: lists by collection, grid and building, people search, and the JSON
//! views of records (with sensitive values masked unless revealed).

use linli_domain::{AnyRecord, Collection, PersonRecord, mask};
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use crate::{Store, StoreError};

/// Filters of `list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this grid.
    pub grid: Option<String>,
    /// Only this building: `3` (any compound) or `幸福里小区/3`.
    pub building: Option<String>,
}

impl ListFilter {
    fn building_parts(&self) -> (Option<String>, Option<String>) {
        match self.building.as_deref() {
            None => (None, None),
            Some(b) => match b.rsplit_once('/') {
                Some((c, b)) => (
                    Some(c.to_string()),
                    Some(b.trim_end_matches('栋').to_string()),
                ),
                None => (None, Some(b.trim_end_matches('栋').to_string())),
            },
        }
    }
}

/// One row of a list, from the derived tables (no document is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Record id.
    pub id: String,
    /// Grid.
    pub grid: Option<String>,
    /// Summary (address, name or title).
    pub title: String,
    /// Second column (tenure, household, status …).
    pub detail: String,
}

/// A person found by [`Store::search`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Household id.
    pub household: String,
    /// Address of the household.
    pub address: String,
    /// Grid.
    pub grid: Option<String>,
    /// Relation to the head (code).
    pub relation: String,
    /// Lives there now (not moved out, not deceased).
    pub present: bool,
    /// What matched: `name`, `initials`, `id_number`, `phone`, `address`.
    pub matched: &'static str,
}

impl Store {
    /// Lists a collection from the derived tables, in address / date order.
    pub fn list(
        &self,
        collection: Collection,
        filter: &ListFilter,
    ) -> Result<Vec<Row>, StoreError> {
        let (compound, building) = filter.building_parts();
        let conn = self.conn();
        let map_row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok(Row {
                id: r.get(0)?,
                grid: r.get(1)?,
                title: r.get(2)?,
                detail: r.get(3)?,
            })
        };
        let rows: Vec<Row> = match collection {
            Collection::Household => {
                let mut stmt = conn.prepare_cached(
                    "SELECT h.id, h.grid,
                            h.compound || h.building || '栋' || h.unit || '单元' || h.room || '室',
                            h.tenure || '|' || h.members || '|' || COALESCE(p.name, '')
                     FROM q_households h LEFT JOIN q_people p ON p.id = h.head
                     WHERE (?1 IS NULL OR h.grid = ?1) AND (?2 IS NULL OR h.compound = ?2)
                       AND (?3 IS NULL OR h.building = ?3)
                     ORDER BY h.sort",
                )?;
                stmt.query_map(params![filter.grid, compound, building], map_row)?
                    .collect::<Result<_, _>>()?
            }
            Collection::Person => {
                let mut stmt = conn.prepare_cached(
                    "SELECT p.id, p.grid, p.name,
                            p.household || ' ' || h.compound || h.building || '栋' || h.unit || '单元' || h.room || '室|' || p.relation
                     FROM q_people p JOIN q_households h ON h.id = p.household
                     WHERE (?1 IS NULL OR p.grid = ?1) AND (?2 IS NULL OR h.compound = ?2)
                       AND (?3 IS NULL OR h.building = ?3)
                     ORDER BY h.sort, p.ord",
                )?;
                stmt.query_map(params![filter.grid, compound, building], map_row)?
                    .collect::<Result<_, _>>()?
            }
            Collection::Sensitive | Collection::Community => Vec::new(),
            other => {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, grid, title, status FROM q_records
                     WHERE collection = ?1 AND (?2 IS NULL OR grid = ?2 OR grid IS NULL)
                       AND (?3 IS NULL OR compound = ?3) AND (?4 IS NULL OR building = ?4)
                     ORDER BY sort, id",
                )?;
                stmt.query_map(
                    params![other.code(), filter.grid, compound, building],
                    map_row,
                )?
                .collect::<Result<_, _>>()?
            }
        };
        Ok(rows.into_iter().map(|r| label_row(collection, r)).collect())
    }

    /// Finds people by name (exact, prefix, then substring), pinyin initials (`zw`), the last
    /// four characters of an ID number or phone (`1234`), or an address (`幸福里 3-2-501`).
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<Hit>, StoreError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn();
        const SELECT: &str = "SELECT p.id, p.name, p.household,
                 h.compound || h.building || '栋' || h.unit || '单元' || h.room || '室', p.grid, p.relation,
                 p.present FROM q_people p JOIN q_households h ON h.id = p.household";
        let mut hits: Vec<Hit> = Vec::new();
        let mut run = |sql: &str,
                       args: &[&dyn rusqlite::ToSql],
                       matched: &'static str|
         -> Result<(), StoreError> {
            if hits.len() >= limit {
                return Ok(());
            }
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(args, |r| {
                Ok(Hit {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    household: r.get(2)?,
                    address: r.get(3)?,
                    grid: r.get(4)?,
                    relation: r.get(5)?,
                    present: r.get(6)?,
                    matched,
                })
            })?;
            for hit in rows {
                let hit = hit?;
                if hits.len() < limit
                    && !hits
                        .iter()
                        .any(|h| h.id == hit.id && h.household == hit.household)
                {
                    hits.push(hit);
                }
            }
            Ok(())
        };
        let upper = text.to_ascii_uppercase();
        let lim = limit as i64;
        let is_tail =
            text.chars().count() == 4 && upper.chars().all(|c| c.is_ascii_digit() || c == 'X');
        if is_tail {
            run(
                &format!(
                    "{SELECT} JOIN q_pii i ON i.person = p.id AND i.doc = p.household || '.pii' WHERE i.id4 = ?1 ORDER BY p.present DESC, h.sort LIMIT ?2"
                ),
                &[&upper, &lim],
                "id_number",
            )?;
            run(
                &format!(
                    "{SELECT} JOIN q_pii i ON i.person = p.id AND i.doc = p.household || '.pii' WHERE i.phone4 = ?1 ORDER BY p.present DESC, h.sort LIMIT ?2"
                ),
                &[&upper, &lim],
                "phone",
            )?;
        }
        if text.chars().all(|c| c.is_ascii_alphabetic()) {
            let lower = text.to_ascii_lowercase();
            let end = format!("{lower}\u{7f}");
            run(
                &format!(
                    "{SELECT} WHERE p.initials >= ?1 AND p.initials < ?2 ORDER BY p.present DESC, length(p.initials), h.sort LIMIT ?3"
                ),
                &[&lower, &end, &lim],
                "initials",
            )?;
        }
        if !is_tail {
            let end = format!("{text}\u{10ffff}");
            run(
                &format!("{SELECT} WHERE p.name = ?1 ORDER BY p.present DESC, h.sort LIMIT ?2"),
                &[&text, &lim],
                "name",
            )?;
            run(
                &format!(
                    "{SELECT} WHERE p.name > ?1 AND p.name < ?2 ORDER BY p.present DESC, p.name, h.sort LIMIT ?3"
                ),
                &[&text, &end, &lim],
                "name",
            )?;
            if text.chars().count() >= 2 && !text.is_ascii() {
                let like = format!("%{text}%");
                run(
                    &format!(
                        "{SELECT} WHERE p.name LIKE ?1 ORDER BY p.present DESC, h.sort LIMIT ?2"
                    ),
                    &[&like, &lim],
                    "name",
                )?;
            }
        }
        if let Some((compound, rest)) =
            address_query(text).filter(|(c, (b, _, _))| b.is_some() || self.is_compound(c))
        {
            let like = format!("%{compound}%");
            let (b, u, r) = rest;
            run(
                &format!(
                    "{SELECT} WHERE h.compound LIKE ?1 AND (?2 IS NULL OR h.building = ?2) AND (?3 IS NULL OR h.unit = ?3)
                     AND (?4 IS NULL OR h.room = ?4) ORDER BY p.present DESC, h.sort, p.ord LIMIT ?5"
                ),
                &[&like, &b, &u, &r, &lim],
                "address",
            )?;
        }
        Ok(hits)
    }

    /// The JSON of a record for output: households carry their members with their sensitive
    /// fields; a person is their [`PersonRecord`]; ID numbers and phones are masked unless
    /// `reveal`.
    pub fn view(&self, id: &str, reveal: bool) -> Result<Value, StoreError> {
        if reveal && !self.may_reveal()? {
            self.check_reveal(id, "")?;
        }
        let v = self.view_of(id, reveal)?;
        if reveal {
            // The role check and the audit entry come with every reveal, whatever the door
            // (once the record is found: what was typed is not logged as a record).
            self.check_reveal(id, "id_number,phone")?;
        }
        Ok(v)
    }

    fn view_of(&self, id: &str, reveal: bool) -> Result<Value, StoreError> {
        if let Some(collection) = self.collection_of(id)? {
            return match collection {
                Collection::Household => {
                    let (h, s) = self
                        .household(id)?
                        .ok_or_else(|| StoreError::NotFound(id.into()))?;
                    let mut v = serde_json::to_value(&h).map_err(json_err(id))?;
                    if let Some(members) = v.get_mut("members").and_then(Value::as_array_mut) {
                        for m in members {
                            let pid = m
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string();
                            if let (Some(f), Some(obj)) = (s.people.get(&pid), m.as_object_mut())
                                && let Value::Object(fields) =
                                    serde_json::to_value(f).map_err(json_err(id))?
                            {
                                obj.extend(fields);
                            }
                        }
                    }
                    if !reveal {
                        mask_json(&mut v);
                    }
                    Ok(v)
                }
                _ => {
                    let rec = self
                        .get(id)?
                        .ok_or_else(|| StoreError::NotFound(id.into()))?;
                    let mut v = serde_json::to_value(&rec).map_err(json_err(id))?;
                    if !reveal {
                        mask_json(&mut v);
                    }
                    Ok(v)
                }
            };
        }
        let person = self
            .person(id)?
            .ok_or_else(|| StoreError::NotFound(id.into()))?;
        let mut v = serde_json::to_value(&person).map_err(json_err(id))?;
        if !reveal {
            mask_json(&mut v);
        }
        Ok(v)
    }

    /// Whether some compound's name contains `text` (compounds are few: read from the
    /// community document's list, not by scanning households).
    fn is_compound(&self, text: &str) -> bool {
        self.community()
            .map(|c| c.compounds.iter().any(|x| x.name.contains(text)))
            .unwrap_or(false)
    }

    /// A person with their sensitive fields.
    pub fn person(&self, id: &str) -> Result<Option<PersonRecord>, StoreError> {
        let Some(hh) = self.household_of(id)? else {
            return Ok(None);
        };
        let Some((h, s)) = self.household(&hh)? else {
            return Ok(None);
        };
        Ok(person_of(&h, &s, id))
    }

    /// Records of a collection as JSON views, filtered like [`Store::list`].
    pub fn list_json(
        &self,
        collection: Collection,
        filter: &ListFilter,
        reveal: bool,
    ) -> Result<Vec<Value>, StoreError> {
        if reveal && !self.may_reveal()? {
            // Refused before anything is read, even an empty list.
            self.check_reveal("", "")?;
        }
        self.list(collection, filter)?
            .iter()
            .map(|row| self.view(&row.id, reveal))
            .collect()
    }

    /// Every record of a collection (e.g. for export), hydrated.
    pub fn all(&self, collection: Collection) -> Result<Vec<AnyRecord>, StoreError> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn()
                .prepare("SELECT id FROM docs WHERE collection = ?1 ORDER BY id")?;
            let rows = stmt.query_map([collection.code()], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        ids.iter()
            .filter_map(|id| self.get(id).transpose())
            .collect()
    }
}

/// Replaces the stored codes in a row's detail with Chinese labels.
fn label_row(collection: Collection, mut row: Row) -> Row {
    use linli_domain::{Relation, Tenure};
    let parts: Vec<&str> = row.detail.split('|').collect();
    row.detail = match (collection, parts.as_slice()) {
        (Collection::Household, [tenure, members, head]) => format!(
            "{} · {members}人 · 户主 {head}",
            Tenure::parse(tenure).map(|t| t.zh()).unwrap_or(tenure)
        ),
        (Collection::Person, [place, relation]) => {
            format!(
                "{place} · {}",
                Relation::parse(relation)
                    .map(|r| r.zh())
                    .unwrap_or(relation)
            )
        }
        _ => row.detail.clone(),
    };
    row
}

fn json_err(id: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Field {
        id: id.to_string(),
        field: "".into(),
        message: e.to_string(),
    }
}

/// Field names whose values are masked in output unless revealed.
pub const SENSITIVE_FIELDS: &[&str] = &["id_number", "phone", "contact_phone"];

/// Masks every sensitive field anywhere in a JSON value.
pub fn mask_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &*val) {
                    ("id_number", Value::String(s)) => {
                        *val = Value::String(mask::mask_id_number(s))
                    }
                    ("phone" | "contact_phone", Value::String(s)) => {
                        *val = Value::String(mask::mask_phone(s))
                    }
                    _ => mask_json(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

type AddressParts = (Option<String>, Option<String>, Option<String>);

/// Reads `幸福里 3-2-501`, `幸福里小区3栋2单元501` or `幸福里` as (compound, (building, unit, room)).
fn address_query(text: &str) -> Option<(String, AddressParts)> {
    let first_digit = text.find(|c: char| c.is_ascii_digit());
    let (compound, rest) = match first_digit {
        Some(i) => (text[..i].trim(), text[i..].trim()),
        None => (text.trim(), ""),
    };
    if compound.chars().count() < 2 || compound.is_ascii() {
        return None;
    }
    let nums: Vec<String> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let compound = compound.trim_end_matches("小区").to_string();
    Some((
        compound,
        (
            nums.first().cloned(),
            nums.get(1).cloned(),
            nums.get(2).cloned(),
        ),
    ))
}

/// Member `id` of household `h`, with their sensitive fields from `s`.
pub(crate) fn person_of(
    h: &linli_domain::Household,
    s: &linli_domain::Sensitive,
    id: &str,
) -> Option<PersonRecord> {
    let person = h.member(id)?.clone();
    let sensitive = s
        .people
        .get(id)
        .cloned()
        .unwrap_or(linli_domain::SensitiveFields {
            id_type: linli_domain::IdType::ResidentId,
            id_number: String::new(),
            phone: String::new(),
            tags: vec![],
            health: String::new(),
        });
    Some(PersonRecord {
        household: h.id.clone(),
        scope: h.scope.clone(),
        person,
        sensitive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_queries() {
        assert_eq!(
            address_query("幸福里 3-2-501"),
            Some((
                "幸福里".into(),
                (Some("3".into()), Some("2".into()), Some("501".into()))
            ))
        );
        assert_eq!(
            address_query("幸福里小区3栋2单元"),
            Some(("幸福里".into(), (Some("3".into()), Some("2".into()), None)))
        );
        assert_eq!(address_query("zw"), None);
    }

    #[test]
    fn masking_reaches_nested_fields() {
        let mut v = serde_json::json!({"members": [{"id_number": "11010519491231002X", "phone": "13812345678", "name": "张伟"}]});
        mask_json(&mut v);
        assert_eq!(v["members"][0]["id_number"], "1101**********002X");
        assert_eq!(v["members"][0]["phone"], "138****5678");
        assert_eq!(v["members"][0]["name"], "张伟");
    }
}
