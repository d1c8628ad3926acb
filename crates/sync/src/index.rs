//! Derived query tables: what screens need fast, computed from the documents and rebuildable
//! from them at any time ([`crate::Store::rebuild_index`]).
//!
//! Architecture invariant: every derived row comes from exactly one document, and is deleted
//! and re-inserted whenever that document is written, in the same transaction.
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
use rusqlite::{Transaction, params};

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

/// Deletes every row derived from document `id`.
pub(crate) fn unindex(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM q_records WHERE id = ?1",
        "DELETE FROM q_households WHERE id = ?1",
        "DELETE FROM q_people WHERE household = ?1",
        "DELETE FROM q_pii WHERE doc = ?1",
        "DELETE FROM q_tags WHERE doc = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([id])?;
    }
    Ok(())
}

/// Inserts the rows derived from one record. The caller has removed the old ones.
pub(crate) fn index(tx: &Transaction<'_>, rec: &AnyRecord) -> Result<(), StoreError> {
    match rec {
        AnyRecord::Household(h) => index_household(tx, h),
        AnyRecord::Sensitive(s) => index_sensitive(tx, s),
        other => {
            let (mut due, mut reference, mut progress) = (None::<i64>, None::<&str>, None);
            let (compound, building, status, sort) = match other {
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
            tx.prepare_cached(
                "INSERT INTO q_records (id, collection, grid, compound, building, title, status, sort, due, ref, progress)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                other.id(),
                other.collection().code(),
                other.scope().grid,
                compound,
                building,
                other.title(),
                status,
                sort,
                due,
                reference,
                progress
            ])?;
            Ok(())
        }
    }
}

fn index_household(tx: &Transaction<'_>, h: &Household) -> Result<(), StoreError> {
    let a = &h.address;
    tx.prepare_cached(
        "INSERT INTO q_households (id, grid, compound, building, unit, room, tenure, members, head, sort)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        h.id,
        h.scope.grid,
        a.compound,
        a.building,
        a.unit,
        a.room,
        h.tenure.code(),
        h.members.iter().filter(|m| m.is_present()).count() as i64,
        h.head,
        address_key(h)
    ])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO q_people (id, household, grid, name, initials, relation, present, ord)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, m) in h.members.iter().enumerate() {
        stmt.execute(params![
            m.id,
            h.id,
            h.scope.grid,
            m.name,
            initials(&m.name),
            m.relation.code(),
            m.is_present(),
            i as i64
        ])?;
    }
    Ok(())
}

fn index_sensitive(tx: &Transaction<'_>, s: &Sensitive) -> Result<(), StoreError> {
    let mut pii =
        tx.prepare_cached("INSERT INTO q_pii (doc, person, id4, phone4) VALUES (?1, ?2, ?3, ?4)")?;
    let mut tags =
        tx.prepare_cached("INSERT OR IGNORE INTO q_tags (doc, person, tag) VALUES (?1, ?2, ?3)")?;
    for (person, f) in &s.people {
        let phone4 = if f.phone.trim().is_empty() {
            None
        } else {
            Some(mask::last4(&f.phone))
        };
        pii.execute(params![s.id, person, mask::last4(&f.id_number), phone4])?;
        for t in &f.tags {
            tags.execute(params![s.id, person, t])?;
        }
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
