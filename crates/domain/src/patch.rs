//! Writing a changed record into its document by touching only what changed.
//!
//! `autosurgeon::reconcile` of a whole record reads every field of the document to find the
//! few that differ (a household with its members is some fifty reads); an edit usually changes
//! one. Here the record's earlier version (what the document holds now) is compared with the
//! new one in Rust, and only the fields that differ are reconciled, each in place: a member's
//! phone is written at `people/<id>/phone`, not by walking the household. The operations
//! written are the same as those of a whole reconcile (autosurgeon writes only differences
//! either way); the reads are far fewer.
//!
//! The fields compared are those listed for hydration (`record_fields!`), in patterns
//! without `..`: a field added to a struct and not listed there does not compile.

use automerge::{AutoCommit, ObjId, ROOT, ReadDoc, Value};
use autosurgeon::{ReconcileError, reconcile_prop};

use crate::roster::{Household, Sensitive};
use crate::work::Task;

/// The object at `prop` of `obj`, if it is one.
fn child(doc: &AutoCommit, obj: &ObjId, prop: impl Into<automerge::Prop>) -> Option<ObjId> {
    match doc.get(obj, prop) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    }
}

/// Reconciles a list whose elements keep their ids and order element by element with `each`
/// (only the elements that changed); any other change of the list as a whole.
fn list<T>(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: &'static str,
    old: &[T],
    new: &[T],
    id: impl Fn(&T) -> &str,
    each: impl Fn(&mut AutoCommit, &ObjId, &T, &T) -> Result<(), ReconcileError>,
) -> Result<(), ReconcileError>
where
    T: PartialEq + autosurgeon::Reconcile,
{
    if old == new {
        return Ok(());
    }
    let same_items = old.len() == new.len() && old.iter().zip(new).all(|(a, b)| id(a) == id(b));
    let Some(seq) = child(doc, obj, prop).filter(|_| same_items) else {
        return reconcile_prop(doc, obj, prop, new);
    };
    for (i, (a, b)) in old.iter().zip(new).enumerate() {
        if a == b {
            continue;
        }
        match child(doc, &seq, i) {
            Some(item) => each(doc, &item, a, b)?,
            None => return reconcile_prop(doc, obj, prop, new),
        }
    }
    Ok(())
}

/// A household, its members element by element.
pub(crate) fn household(
    doc: &mut AutoCommit,
    old: &Household,
    new: &Household,
) -> Result<(), ReconcileError> {
    new.patch_fields(old, doc, &ROOT)?;
    list(
        doc,
        &ROOT,
        "members",
        &old.members,
        &new.members,
        |p| &p.id,
        |doc, obj, a, b| b.patch_fields(a, doc, obj),
    )
}

/// A household's sensitive document, person by person.
pub(crate) fn sensitive(
    doc: &mut AutoCommit,
    old: &Sensitive,
    new: &Sensitive,
) -> Result<(), ReconcileError> {
    new.patch_fields(old, doc, &ROOT)?;
    if old.people == new.people {
        return Ok(());
    }
    let same_people = old.people.keys().eq(new.people.keys());
    let Some(map) = child(doc, &ROOT, "people").filter(|_| same_people) else {
        return reconcile_prop(doc, ROOT, "people", &new.people);
    };
    for ((key, a), b) in old.people.iter().zip(new.people.values()) {
        if a == b {
            continue;
        }
        match child(doc, &map, key.as_str()) {
            Some(obj) => b.patch_fields(a, doc, &obj)?,
            None => reconcile_prop(doc, &map, key.as_str(), b)?,
        }
    }
    Ok(())
}

/// An inspection task, its checklist item by item.
pub(crate) fn task(doc: &mut AutoCommit, old: &Task, new: &Task) -> Result<(), ReconcileError> {
    new.patch_fields(old, doc, &ROOT)?;
    list(
        doc,
        &ROOT,
        "checklist",
        &old.checklist,
        &new.checklist,
        |i| &i.id,
        |doc, obj, a, b| b.patch_fields(a, doc, obj),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interchange::parse_line;
    use crate::roster::{Relation, Tenure};
    use crate::work::TaskStatus;
    use crate::{AnyRecord, Day};

    // Lines in the benchmark generator's format (its made-up ID numbers and phones).
    const HOUSEHOLD: &str = r#"{"kind":"household","id":"hh-000001","grid":"G01","compound":"幸福里小区","building":"1","unit":"1","room":"404","area_m2":65.9,"tenure":"自住","members":[{"id":"p-0000001","name":"何斌","gender":"男","birth":"1981-12-03","id_number":"320106198112039810","phone":"16628794596","relation":"户主","tags":[],"notes":""},{"id":"p-0000002","name":"何云桂","gender":"女","birth":"1985-03-03","id_number":"320102198503039521","phone":"13698550969","relation":"配偶","tags":[],"notes":""},{"id":"p-0000003","name":"何凯峰","gender":"男","birth":"2010-08-10","id_number":"320102201008106293","phone":"17360623969","relation":"子女","tags":[],"notes":""}]}"#;
    const TASK: &str = r#"{"kind":"task","id":"task-0001","grid":"G08","title":"电梯安全检查 东风新村40栋","building":"40","due":"2026-02-18","status":"in_progress","checklist":[{"item":"紧急呼叫畅通","ok":true},{"item":"电梯年检合格证在有效期","ok":false},{"item":"轿厢照明正常","ok":null}]}"#;

    /// A change made to a record.
    type Change<T> = Box<dyn Fn(&mut T)>;

    fn records() -> (Household, Sensitive, Task) {
        let today = Day::parse("2026-11-20").unwrap();
        let mut recs = parse_line(HOUSEHOLD, "c1", today).unwrap();
        recs.extend(parse_line(TASK, "c1", today).unwrap());
        let (mut h, mut s, mut t) = (None, None, None);
        for r in recs {
            match r {
                AnyRecord::Household(x) => h = Some(x),
                AnyRecord::Sensitive(x) => s = Some(x),
                AnyRecord::Task(x) => t = Some(x),
                _ => {}
            }
        }
        (h.unwrap(), s.unwrap(), t.unwrap())
    }

    fn doc_of(rec: &AnyRecord) -> AutoCommit {
        let mut doc = AutoCommit::new();
        rec.reconcile_into(&mut doc).unwrap();
        doc.commit();
        doc
    }

    /// Patching `old`'s document to `new` gives `new`, the same document a whole reconcile
    /// gives, with no more operations.
    fn check(old: AnyRecord, new: AnyRecord) {
        let mut patched = doc_of(&old);
        let mut whole = patched.fork();
        new.reconcile_changes(&old, &mut patched).unwrap();
        new.reconcile_into(&mut whole).unwrap();
        let read = AnyRecord::hydrate_from(new.collection(), &patched).unwrap();
        assert_eq!(read, new);
        assert_eq!(
            read,
            AnyRecord::hydrate_from(new.collection(), &whole).unwrap()
        );
        let ops = |d: &mut AutoCommit| {
            d.commit();
            d.get_last_local_change().map_or(0, |c| c.len())
        };
        assert!(ops(&mut patched) <= ops(&mut whole));
    }

    #[test]
    fn every_kind_of_change_is_written_as_a_whole_reconcile_writes_it() {
        let (h, s, t) = records();
        let household: Vec<Change<Household>> = vec![
            Box::new(|h| h.members[2].notes = "入户走访：宣传反诈知识".into()),
            Box::new(|h| h.members[0].name = "何兵".into()),
            Box::new(|h| h.members[1].moved_out = Some(Day::parse("2026-11-01").unwrap())),
            Box::new(|h| h.tenure = Tenure::Rented),
            Box::new(|h| h.address.room = "405".into()),
            Box::new(|h| h.head = Some("p-0000002".into())),
            Box::new(|h| h.tags.push("重点关注".into())),
            Box::new(|h| h.last_visit = Some(Day::parse("2026-11-02").unwrap())),
            Box::new(|h| {
                h.members.pop();
            }),
            Box::new(|h| {
                let mut p = h.members[2].clone();
                p.id = "p-0000009".into();
                p.relation = Relation::Child;
                h.members.push(p);
            }),
            Box::new(|h| h.members.swap(1, 2)),
            Box::new(|h| {
                h.members[0].notes = "a".into();
                h.members[2].workplace = "b".into();
            }),
        ];
        for change in &household {
            let mut new = h.clone();
            change(&mut new);
            check(AnyRecord::Household(h.clone()), AnyRecord::Household(new));
        }
        let sensitive: Vec<Change<Sensitive>> = vec![
            Box::new(|s| s.people.get_mut("p-0000002").unwrap().phone = "13900001111".into()),
            Box::new(|s| s.people.get_mut("p-0000001").unwrap().tags = vec!["独居老人".into()]),
            Box::new(|s| s.people.get_mut("p-0000003").unwrap().health = "哮喘".into()),
            Box::new(|s| {
                let f = s.people["p-0000003"].clone();
                s.people.insert("p-0000009".into(), f);
            }),
            Box::new(|s| {
                s.people.remove("p-0000001");
            }),
        ];
        for change in &sensitive {
            let mut new = s.clone();
            change(&mut new);
            check(AnyRecord::Sensitive(s.clone()), AnyRecord::Sensitive(new));
        }
        let task: Vec<Change<Task>> = vec![
            Box::new(|t| t.checklist[2].ok = Some(true)),
            Box::new(|t| t.checklist[1].note = "已联系物业".into()),
            Box::new(|t| t.status = TaskStatus::Done),
            Box::new(|t| {
                let mut i = t.checklist[0].clone();
                i.id = "x".into();
                t.checklist.push(i);
            }),
        ];
        for change in &task {
            let mut new = t.clone();
            change(&mut new);
            check(AnyRecord::Task(t.clone()), AnyRecord::Task(new));
        }
    }

    /// Two devices edit different members of one household at once: both edits survive the
    /// merge, as with whole reconciles.
    #[test]
    fn concurrent_edits_of_different_members_both_survive() {
        let (h, _, _) = records();
        let old = AnyRecord::Household(h.clone());
        let mut a = doc_of(&old);
        let mut b = a.fork();
        let mut ha = h.clone();
        ha.members[0].notes = "甲".into();
        let mut hb = h.clone();
        hb.members[2].notes = "乙".into();
        AnyRecord::Household(ha)
            .reconcile_changes(&old, &mut a)
            .unwrap();
        AnyRecord::Household(hb)
            .reconcile_changes(&old, &mut b)
            .unwrap();
        a.merge(&mut b).unwrap();
        let AnyRecord::Household(merged) =
            AnyRecord::hydrate_from(crate::Collection::Household, &a).unwrap()
        else {
            panic!("not a household");
        };
        assert_eq!(merged.members[0].notes, "甲");
        assert_eq!(merged.members[2].notes, "乙");
    }
}
