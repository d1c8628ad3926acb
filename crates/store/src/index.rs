//! Derived query tables: what screens need fast, computed from the documents and rebuildable
//! from them at any time ([`crate::Store::rebuild_index`]).
//!
//! Architecture invariant: every derived row comes from exactly one document, and is brought up
//! to date whenever that document is written, in the same transaction (a table whose rows
//! changed is rewritten for that document; one whose rows did not is left alone).
//!
//! | table | from | for |
//! |---|---|---|
//! | `q_households` | household documents | browsing by compound / building / unit / room |
//! | `q_people` | household documents (members) | search by name and pinyin initials |
//! | `q_pii` | sensitive documents | search by the last four digits of ID number or phone |
//! | `q_tags` | sensitive documents | people by attention tag |
//! | `q_records` | every other document | lists by collection, grid, building |

use linli_domain::{AnyRecord, Household, Sensitive, mask};
use pinyin::ToPinyin;
use rusqlite::Transaction;
use rusqlite::types::Value;

use crate::StoreError;

/// Pinyin initials of a name, lower-case: `张伟` → `zw`. Latin letters are kept, other
/// characters without a reading are skipped.
pub fn initials(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            if c.is_ascii_alphabetic() {
                Some(c.to_ascii_lowercase())
            } else {
                c.to_pinyin().and_then(|p| p.first_letter().chars().next())
            }
        })
        .collect()
}

/// A sort key that orders numbers inside text numerically (`2` before `10`).
pub fn natural_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            out.push_str(&format!("{:0>8}", digits));
            digits.clear();
        }
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn address_key(h: &Household) -> String {
    let a = &h.address;
    format!(
        "{}\u{1}{}\u{1}{}\u{1}{}",
        a.compound,
        natural_key(&a.building),
        natural_key(&a.unit),
        natural_key(&a.room)
    )
}

/// The rows one document contributes to one derived table.
struct Rows {
    table: &'static str,
    /// The column naming the document.
    key: &'static str,
    /// The primary key's columns: one row of the document each.
    pk: &'static [&'static str],
    /// The columns, in insert order (the key among them).
    cols: &'static [&'static str],
    /// `INSERT OR IGNORE` (a row may repeat, e.g. a tag given twice).
    or_ignore: bool,
    rows: Vec<Vec<Value>>,
}

/// Every derived row of a record, per table of its collection (a table it has no rows in is
/// listed empty, so that stale rows are removed).
fn derived(rec: &AnyRecord) -> Vec<Rows> {
    match rec {
        AnyRecord::Household(h) => household_rows(h),
        AnyRecord::Sensitive(s) => sensitive_rows(s),
        other => vec![record_rows(other)],
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn record_rows(rec: &AnyRecord) -> Rows {
    let (mut due, mut reference, mut progress) = (None::<i64>, None::<&str>, None);
    let (compound, building, status, sort) = match rec {
        AnyRecord::Task(t) => {
            due = t.due.map(|d| d.end_ms());
            let (checked, all) = t.progress();
            progress = Some(format!("{checked}/{all}"));
            (
                t.compound.clone(),
                t.building.clone(),
                t.status.code().to_string(),
                t.due.map(|d| d.to_string()).unwrap_or_default(),
            )
        }
        AnyRecord::Request(r) => {
            if r.state().is_none_or(|s| s.is_open()) {
                due = Some(r.current_deadline().0);
            }
            reference = r.household.as_deref();
            (
                String::new(),
                String::new(),
                r.state()
                    .map(|s| s.code())
                    .unwrap_or("conflict")
                    .to_string(),
                r.created.0.to_string(),
            )
        }
        AnyRecord::Visit(v) => {
            reference = Some(&v.household);
            (
                String::new(),
                String::new(),
                v.outcome.code().into(),
                v.at.0.to_string(),
            )
        }
        AnyRecord::Post(p) => (
            String::new(),
            String::new(),
            p.status.code().into(),
            p.at.0.to_string(),
        ),
        AnyRecord::Notice(n) => (
            String::new(),
            String::new(),
            String::new(),
            n.published.0.to_string(),
        ),
        AnyRecord::Ballot(b) => (
            b.compound.clone(),
            String::new(),
            b.status.code().into(),
            b.opens.to_string(),
        ),
        AnyRecord::Organisation(o) => (
            o.address.compound.clone(),
            o.address.building.clone(),
            o.kind.code().into(),
            natural_key(&o.name),
        ),
        _ => (String::new(), String::new(), String::new(), String::new()),
    };
    let scope = rec.scope();
    Rows {
        table: "q_records",
        key: "id",
        pk: &["id"],
        cols: &[
            "id",
            "collection",
            "grid",
            "compound",
            "building",
            "title",
            "status",
            "sort",
            "due",
            "ref",
            "progress",
        ],
        or_ignore: false,
        rows: vec![vec![
            text(rec.id()),
            text(rec.collection().code()),
            opt_text(scope.grid.as_deref()),
            Value::Text(compound),
            Value::Text(building),
            Value::Text(rec.title()),
            Value::Text(status),
            Value::Text(sort),
            due.map_or(Value::Null, Value::Integer),
            opt_text(reference),
            progress.map_or(Value::Null, Value::Text),
        ]],
    }
}

fn household_rows(h: &Household) -> Vec<Rows> {
    let a = &h.address;
    let grid = opt_text(h.scope.grid.as_deref());
    let household = Rows {
        table: "q_households",
        key: "id",
        pk: &["id"],
        cols: &[
            "id", "grid", "compound", "building", "unit", "room", "tenure", "members", "head",
            "sort",
        ],
        or_ignore: false,
        rows: vec![vec![
            text(&h.id),
            grid.clone(),
            text(&a.compound),
            text(&a.building),
            text(&a.unit),
            text(&a.room),
            text(h.tenure.code()),
            Value::Integer(h.members.iter().filter(|m| m.is_present()).count() as i64),
            opt_text(h.head.as_deref()),
            Value::Text(address_key(h)),
        ]],
    };
    let people = Rows {
        table: "q_people",
        key: "household",
        pk: &["id", "household"],
        cols: &[
            "id",
            "household",
            "grid",
            "name",
            "initials",
            "relation",
            "present",
            "ord",
        ],
        or_ignore: false,
        rows: h
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                vec![
                    text(&m.id),
                    text(&h.id),
                    grid.clone(),
                    text(&m.name),
                    Value::Text(initials(&m.name)),
                    text(m.relation.code()),
                    Value::Integer(i64::from(m.is_present())),
                    Value::Integer(i as i64),
                ]
            })
            .collect(),
    };
    vec![household, people]
}

fn sensitive_rows(s: &Sensitive) -> Vec<Rows> {
    let mut pii = Vec::new();
    let mut tags = Vec::new();
    for (person, f) in &s.people {
        let phone4 = if f.phone.trim().is_empty() {
            Value::Null
        } else {
            Value::Text(mask::last4(&f.phone))
        };
        pii.push(vec![
            text(&s.id),
            text(person),
            Value::Text(mask::last4(&f.id_number)),
            phone4,
        ]);
        // Each tag once, in linear time (a received document is not validated and may list
        // any number of tags: a list lookup made 16,000 of them cost 31 s).
        let mut seen = std::collections::HashSet::new();
        for t in &f.tags {
            if seen.insert(t.as_str()) {
                tags.push(vec![text(&s.id), text(person), text(t)]);
            }
        }
    }
    vec![
        Rows {
            table: "q_pii",
            key: "doc",
            pk: &["doc", "person"],
            cols: &["doc", "person", "id4", "phone4"],
            or_ignore: false,
            rows: pii,
        },
        Rows {
            table: "q_tags",
            key: "doc",
            pk: &["doc", "person", "tag"],
            cols: &["doc", "person", "tag"],
            or_ignore: true,
            rows: tags,
        },
    ]
}

fn insert_sql(rows: &Rows) -> String {
    let marks: Vec<String> = (1..=rows.cols.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT {}INTO {} ({}) VALUES ({})",
        if rows.or_ignore { "OR IGNORE " } else { "" },
        rows.table,
        rows.cols.join(", "),
        marks.join(", ")
    )
}

fn insert(tx: &Transaction<'_>, rows: &Rows) -> Result<(), StoreError> {
    if rows.rows.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(&insert_sql(rows))?;
    for row in &rows.rows {
        stmt.execute(rusqlite::params_from_iter(row))?;
    }
    Ok(())
}

fn insert_row(tx: &Transaction<'_>, rows: &Rows, row: &[Value]) -> Result<(), StoreError> {
    tx.prepare_cached(&insert_sql(rows))?
        .execute(rusqlite::params_from_iter(row))?;
    Ok(())
}

/// The stored rows of document `id` in `rows.table`.
fn stored_rows(tx: &Transaction<'_>, id: &str, rows: &Rows) -> Result<Vec<Vec<Value>>, StoreError> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {} FROM {} WHERE {} = ?1",
        rows.cols.join(", "),
        rows.table,
        rows.key
    ))?;
    let n = rows.cols.len();
    let stored = stmt
        .query_map([id], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
        .collect::<Result<Vec<Vec<Value>>, _>>()?;
    Ok(stored)
}

/// Brings the stored rows `stored` of one document to `rows.rows`, row by row: a row whose
/// key is gone is deleted, a new key inserted, and a row whose other columns changed is
/// updated in those columns only, so that an index on a column that did not change is left
/// alone (a new phone number rewrites the phone index's entry, not the ID number index's, nor
/// the other members' rows).
fn bring_to(tx: &Transaction<'_>, rows: &Rows, stored: Vec<Vec<Value>>) -> Result<(), StoreError> {
    let at: Vec<usize> = rows
        .pk
        .iter()
        .filter_map(|k| rows.cols.iter().position(|c| c == k))
        .collect();
    let key = |row: &[Value]| -> Vec<Value> { at.iter().map(|&i| row[i].clone()).collect() };
    let pk_where = |from: usize| -> String {
        rows.pk
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ?{}", from + i))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let mut old: Vec<Option<Vec<Value>>> = stored.into_iter().map(Some).collect();
    for row in &rows.rows {
        let k = key(row);
        let found = old
            .iter_mut()
            .find(|o| o.as_ref().is_some_and(|o| key(o) == k))
            .and_then(Option::take);
        match found {
            None => insert_row(tx, rows, row)?,
            Some(before) if before == *row => {}
            Some(before) => {
                let changed: Vec<usize> = (0..rows.cols.len())
                    .filter(|&i| before[i] != row[i])
                    .collect();
                let set: Vec<String> = changed
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| format!("{} = ?{}", rows.cols[i], n + 1))
                    .collect();
                let sql = format!(
                    "UPDATE {} SET {} WHERE {}",
                    rows.table,
                    set.join(", "),
                    pk_where(changed.len() + 1)
                );
                let values = changed.iter().map(|&i| &row[i]).chain(k.iter());
                tx.prepare_cached(&sql)?
                    .execute(rusqlite::params_from_iter(values))?;
            }
        }
    }
    for gone in old.into_iter().flatten() {
        let sql = format!("DELETE FROM {} WHERE {}", rows.table, pk_where(1));
        tx.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(key(&gone)))?;
    }
    Ok(())
}

/// Inserts the rows derived from a new document.
pub(crate) fn index(tx: &Transaction<'_>, rec: &AnyRecord) -> Result<(), StoreError> {
    for rows in derived(rec) {
        insert(tx, &rows)?;
    }
    Ok(())
}

/// Brings the rows derived from a changed document up to date: a table whose rows did not
/// change (most edits touch one field) is left alone; in one whose rows did, only the rows
/// and columns that changed are written.
pub(crate) fn reindex(tx: &Transaction<'_>, rec: &AnyRecord) -> Result<(), StoreError> {
    let id = rec.id();
    for rows in derived(rec) {
        let stored = stored_rows(tx, id, &rows)?;
        if same_rows(&stored, &rows.rows) {
            continue;
        }
        bring_to(tx, &rows, stored)?;
    }
    Ok(())
}

/// [`reindex`] for a document whose previous record is known: a table in which the previous
/// record's rows equal the new one's is not even read (the stored rows are the previous
/// record's, kept so by every write).
pub(crate) fn reindex_after(
    tx: &Transaction<'_>,
    before: &AnyRecord,
    rec: &AnyRecord,
) -> Result<(), StoreError> {
    let id = rec.id();
    for (old, new) in derived(before).into_iter().zip(derived(rec)) {
        if old.table == new.table && same_rows(&old.rows, &new.rows) {
            continue;
        }
        let stored = stored_rows(tx, id, &new)?;
        if same_rows(&stored, &new.rows) {
            continue;
        }
        bring_to(tx, &new, stored)?;
    }
    Ok(())
}

/// Whether two lists hold the same rows (in any order).
fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    a.len() == b.len() && b.iter().all(|row| a.contains(row))
}

/// The derived tables, in a fixed order, for comparing an incrementally maintained index
/// with a rebuilt one.
pub const TABLES: &[&str] = &["q_households", "q_people", "q_pii", "q_tags", "q_records"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinyin_initials() {
        assert_eq!(initials("张伟"), "zw");
        assert_eq!(initials("欧阳娜娜"), "oynn");
        assert_eq!(initials("Li 明"), "lim");
    }

    #[test]
    fn natural_keys_sort_numbers() {
        assert!(natural_key("幸福里2") < natural_key("幸福里10"));
        assert!(natural_key("501") > natural_key("98"));
    }
}
