//! Who changed what and when, read from the documents' own Automerge history: every change
//! carries its actor (the device), a timestamp and a message naming the person and the
//! operation; what it changed is the diff between its dependencies and itself.

use automerge::{ChangeHash, ObjId, PatchAction, Prop, ReadDoc, Value};
use linli_domain::{Collection, Sensitive, Timestamp, mask};
use serde::Serialize;

use crate::query::SENSITIVE_FIELDS;
use crate::{Store, StoreError};

/// One change of a record.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The document changed.
    pub doc: String,
    /// The change hash (hex).
    pub hash: String,
    /// When.
    pub time: Timestamp,
    /// The person who made it.
    pub by: String,
    /// The device.
    pub device: String,
    /// The operation (`import`, `edit phone` …).
    pub what: String,
    /// The fields it set, `path = value`, sensitive values masked unless revealed.
    pub changes: Vec<String>,
}

fn render_value(v: &Value<'_>, key: &str, reveal: bool) -> String {
    match v {
        Value::Object(t) => match t {
            automerge::ObjType::Map | automerge::ObjType::Table => "{…}".into(),
            _ => "[…]".into(),
        },
        Value::Scalar(s) => {
            let text = match s.as_ref() {
                automerge::ScalarValue::Str(s) => s.to_string(),
                automerge::ScalarValue::Null => "null".into(),
                other => other.to_string(),
            };
            if !reveal && SENSITIVE_FIELDS.contains(&key) {
                if key == "id_number" {
                    mask::mask_id_number(&text)
                } else {
                    mask::mask_phone(&text)
                }
            } else {
                text
            }
        }
    }
}

/// Renders a patch path, naming list items by their `id` field where they have one
/// (`members[p-0000001].phone` rather than `members[2].phone`).
fn render_path(doc: &automerge::AutoCommit, path: &[(ObjId, Prop)], at: &[ChangeHash]) -> String {
    let mut out = String::new();
    for (obj, prop) in path {
        match prop {
            Prop::Map(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Prop::Seq(i) => {
                let label = doc
                    .get_at(obj, *i, at)
                    .ok()
                    .flatten()
                    .and_then(|(_, item)| doc.get_at(&item, "id", at).ok().flatten())
                    .and_then(|(v, _)| v.into_string().ok())
                    .unwrap_or_else(|| i.to_string());
                out.push_str(&format!("[{label}]"));
            }
        }
    }
    out
}

impl Store {
    /// The history of a record: for a household or a person, of the household document and
    /// its sensitive document; for a person only the changes that touch them. Oldest first.
    pub fn history(&self, id: &str, reveal: bool) -> Result<Vec<HistoryEntry>, StoreError> {
        if reveal && !self.may_reveal()? {
            self.check_reveal(id, "")?;
        }
        let (docs, person): (Vec<String>, Option<&str>) = match self.collection_of(id)? {
            Some(Collection::Household) => (vec![id.to_string(), Sensitive::doc_id(id)], None),
            Some(_) => (vec![id.to_string()], None),
            None => {
                let hh = self
                    .household_of(id)?
                    .ok_or_else(|| StoreError::NotFound(id.into()))?;
                (vec![hh.clone(), Sensitive::doc_id(&hh)], Some(id))
            }
        };
        if reveal {
            // The record exists: the reveal is written to the audit log.
            self.check_reveal(id, "history")?;
        }
        let actors = self.actors()?;
        let mut out = Vec::new();
        for doc_id in docs {
            let Some((_, mut doc)) = self.load_doc(&doc_id)? else {
                continue;
            };
            let changes = doc.get_changes(&[]);
            for change in changes {
                let hash = change.hash();
                let deps = change.deps().to_vec();
                let actor = change.actor_id().to_hex_string();
                let (by, what) = match change
                    .message()
                    .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                {
                    Some(m) => (
                        m["by"].as_str().unwrap_or("").to_string(),
                        m["what"].as_str().unwrap_or("").to_string(),
                    ),
                    None => (String::new(), change.message().unwrap_or("").to_string()),
                };
                let patches = doc.diff(&deps, &[hash]);
                let mut lines = Vec::new();
                let mut touches_person = person.is_none();
                let created = deps.is_empty();
                for p in &patches {
                    let base = render_path(&doc, &p.path, &[hash]);
                    if let Some(pid) = person {
                        if base.contains(&format!("[{pid}]"))
                            || base.contains(&format!("people.{pid}"))
                            || base.ends_with(&format!(".{pid}"))
                        {
                            touches_person = true;
                        } else if !(created && base.is_empty()) {
                            continue;
                        }
                    }
                    let join = |k: &str| {
                        if base.is_empty() {
                            k.to_string()
                        } else {
                            format!("{base}.{k}")
                        }
                    };
                    let line = match &p.action {
                        PatchAction::PutMap { key, value, .. } => {
                            if person.is_some() && key == pid_or_empty(person) {
                                touches_person = true;
                            }
                            format!("{} = {}", join(key), render_value(&value.0, key, reveal))
                        }
                        PatchAction::PutSeq { index, value, .. } => {
                            format!("{base}[{index}] = {}", render_value(&value.0, "", reveal))
                        }
                        PatchAction::Insert { index, values, .. } => {
                            format!("{base}[{index}] + {} item(s)", values.len())
                        }
                        PatchAction::DeleteMap { key } => format!("{} removed", join(key)),
                        PatchAction::DeleteSeq { index, length } => {
                            format!("{base}[{index}] - {length} item(s)")
                        }
                        other => format!("{base}: {other:?}"),
                    };
                    lines.push(line);
                }
                if !touches_person {
                    continue;
                }
                if created {
                    lines = vec![format!("created ({} fields)", lines.len())];
                }
                out.push(HistoryEntry {
                    doc: doc_id.clone(),
                    hash: hash.to_string(),
                    time: Timestamp(change.timestamp() * 1000),
                    device: actors
                        .get(&actor)
                        .cloned()
                        .unwrap_or_else(|| actor[..8.min(actor.len())].to_string()),
                    by,
                    what,
                    changes: lines,
                });
            }
        }
        out.sort_by_key(|e| e.time);
        Ok(out)
    }
}

fn pid_or_empty(person: Option<&str>) -> &str {
    person.unwrap_or("\u{0}")
}
