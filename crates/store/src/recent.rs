//! Recently used documents and records, kept in memory.
//!
//! Loading a document (decompress, parse, apply its chunks) is the costly step of writing, and
//! reading a record (its stored JSON, or hydrating the document) that of reading. An edit reads
//! a household and its sensitive document, then writes the one it changed: the cache makes
//! each of those one read, and keeps the document the write decoded for the next write or
//! push. An entry holds a record, a decoded document, or both. It is valid only while the
//! stored heads equal its own, so a write by another process to the same file, or a merge, can
//! never be read stale: the heads row is checked on every use. A state kept by a write that is
//! then rolled back is never used either: heads only move forward, so the stored row never
//! shows those heads. A rebuild of the stored records empties it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use automerge::AutoCommit;
use linli_domain::{AnyRecord, Collection};

/// Entries kept; a household with its sensitive document is two. About 22 KB each (a decoded
/// household or `.pii` document with its record: 1,100 of them took 23 MB), so 512 is ~11 MB:
/// enough for a burst of a few hundred edits to be sent without decoding each again (the
/// benchmark's 293-edit push: 42 ms with 256 entries, 32 ms with 512, 29 ms with 1,024).
const CAPACITY: usize = 512;

struct Entry {
    /// When it was kept: its place in `order`.
    stamp: u64,
    heads: Vec<u8>,
    collection: Collection,
    /// The decoded document, unless only the record was read (from its stored JSON).
    doc: Option<AutoCommit>,
    record: Option<AnyRecord>,
}

/// The cache (interior mutability: reads of the store take `&self`).
#[derive(Default)]
pub(crate) struct Recent {
    inner: RefCell<Inner>,
}

struct Inner {
    /// Boxed: a decoded document and its record are a few hundred bytes inline, which each
    /// insert and every growth of the table would copy (5 % of an edit, mostly page faults).
    map: HashMap<String, Box<Entry>>,
    /// The order entries were kept in, oldest first, for eviction. An id taken out or kept
    /// again leaves its older stamp here, skipped when reached (so that taking is O(1)).
    order: VecDeque<(u64, String)>,
    /// The next stamp.
    next: u64,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            map: HashMap::with_capacity(CAPACITY + 1),
            order: VecDeque::with_capacity(2 * CAPACITY),
            next: 0,
        }
    }
}

impl Recent {
    /// The hydrated record of `id` if the cache holds it at `heads`.
    pub(crate) fn record(&self, id: &str, heads: &[u8]) -> Option<AnyRecord> {
        let inner = self.inner.borrow();
        inner
            .map
            .get(id)
            .filter(|e| e.heads == heads)
            .and_then(|e| e.record.clone())
    }

    /// Takes the document `id` (and its record) out of the cache if it holds it at `heads`:
    /// for a write, which changes it and keeps the result (no copy of the document made).
    pub(crate) fn take(
        &self,
        id: &str,
        heads: &[u8],
    ) -> Option<(Collection, Option<AutoCommit>, Option<AnyRecord>)> {
        let mut inner = self.inner.borrow_mut();
        if inner.map.get(id).is_none_or(|e| e.heads != heads) {
            return None;
        }
        let e = inner.map.remove(id)?;
        Some((e.collection, e.doc, e.record))
    }

    /// Keeps `doc` and its record (either may be unknown) as the state of `id` at `heads`.
    pub(crate) fn keep(
        &self,
        id: &str,
        heads: Vec<u8>,
        collection: Collection,
        doc: Option<AutoCommit>,
        record: Option<AnyRecord>,
    ) {
        let mut inner = self.inner.borrow_mut();
        let stamp = inner.next;
        inner.next += 1;
        let entry = Box::new(Entry {
            stamp,
            heads,
            collection,
            doc,
            record,
        });
        inner.map.insert(id.to_string(), entry);
        inner.order.push_back((stamp, id.to_string()));
        while inner.map.len() > CAPACITY {
            let Some((stamp, old)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|e| e.stamp == stamp) {
                inner.map.remove(&old);
            }
        }
        // Stale stamps of entries kept again and again while the cache is not full.
        if inner.order.len() > 4 * CAPACITY {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(stamp, id)| map.get(id).is_some_and(|e| e.stamp == *stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_used_only_at_its_heads_and_the_oldest_goes_first() {
        let r = Recent::default();
        r.keep(
            "a",
            vec![1],
            Collection::Task,
            Some(AutoCommit::new()),
            None,
        );
        assert!(r.record("a", &[1]).is_none(), "no record kept yet");
        assert!(r.take("a", &[2]).is_none(), "other heads: a miss");
        let (collection, doc, record) = r.take("a", &[1]).expect("held at its heads");
        assert!(r.take("a", &[1]).is_none(), "taken out");
        r.keep("a", vec![1], collection, doc, record);
        for i in 0..CAPACITY {
            r.keep(
                &format!("d{i}"),
                vec![0],
                Collection::Task,
                Some(AutoCommit::new()),
                None,
            );
        }
        assert!(r.take("a", &[1]).is_none(), "evicted");
        assert!(r.take(&format!("d{}", CAPACITY - 1), &[0]).is_some());
    }

    #[test]
    fn an_entry_kept_again_is_the_newest_and_stale_places_are_bounded() {
        let r = Recent::default();
        let keep = |id: &str| r.keep(id, vec![0], Collection::Task, None, None);
        for i in 0..CAPACITY {
            keep(&format!("d{i}"));
        }
        keep("d0");
        keep("new");
        assert!(r.take("d0", &[0]).is_some(), "kept again: not the oldest");
        assert!(r.take("d1", &[0]).is_none(), "the oldest went");
        for _ in 0..10 * CAPACITY {
            keep("again");
        }
        let inner = r.inner.borrow();
        assert!(inner.map.len() <= CAPACITY);
        assert!(
            inner.order.len() <= 4 * CAPACITY + 1,
            "{}",
            inner.order.len()
        );
    }
}
