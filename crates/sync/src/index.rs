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
        for t in &f.tags {
            let row = vec![text(&s.id), text(person), text(t)];
            if !tags.contains(&row) {
                tags.push(row);
            }
        }
    }
    vec![
        Rows {
            table: "q_pii",
            key: "doc",
            cols: &["doc", "person", "id4", "phone4"],
            or_ignore: false,
            rows: pii,
        },
        Rows {
            table: "q_tags",
            key: "doc",
            cols: &["doc", "person", "tag"],
            or_ignore: true,
            rows: tags,
        },
    ]
}

fn insert(tx: &Transaction<'_>, rows: &Rows) -> Result<(), StoreError> {
    if rows.rows.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=rows.cols.len()).map(|i| format!("?{i}")).collect();
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT {}INTO {} ({}) VALUES ({})",
        if rows.or_ignore { "OR IGNORE " } else { "" },
        rows.table,
        rows.cols.join(", "),
        marks.join(", ")
    ))?;
    for row in &rows.rows {
        stmt.execute(rusqlite::params_from_iter(row))?;
    }
    Ok(())
}

/// Whether the stored rows of document `id` in `rows.table` are exactly `rows.rows`.
fn same_as_stored(tx: &Transaction<'_>, id: &str, rows: &Rows) -> Result<bool, StoreError> {
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
    Ok(stored.len() == rows.rows.len() && rows.rows.iter().all(|row| stored.contains(row)))
}

/// Inserts the rows derived from a new document.
pub(crate) fn index(tx: &Transaction<'_>, rec: &AnyRecord) -> Result<(), StoreError> {
    for rows in derived(rec) {
        insert(tx, &rows)?;
    }
    Ok(())
}

/// Brings the rows derived from a changed document up to date: a table whose rows did not
/// change (most edits touch one field) is left alone; one whose rows did is rewritten.
pub(crate) fn reindex(tx: &Transaction<'_>, rec: &AnyRecord) -> Result<(), StoreError> {
    let id = rec.id();
    for rows in derived(rec) {
        if same_as_stored(tx, id, &rows)? {
            continue;
        }
        tx.prepare_cached(&format!(
            "DELETE FROM {} WHERE {} = ?1",
            rows.table, rows.key
        ))?
        .execute([id])?;
        insert(tx, &rows)?;
    }
    Ok(())
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
