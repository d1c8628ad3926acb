//! What the store answers a peer-to-peer session (`linli_proto::peer`): every document as the
//! reconciliation sees it, and the documents or changes a peer asked for.

use std::collections::HashSet;

use linli_proto::peer::{Item, LoadRequest, Loaded};
use linli_wire::peer::PeerDoc;

use crate::outbox::decode_heads;
use crate::{Store, StoreError};

impl Store {
    /// Every document as the reconciliation sees it: id, scope, heads.
    pub fn summary(&self) -> Result<Vec<Item>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare("SELECT id, grid, heads FROM docs ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            let grid: Option<String> = r.get(1)?;
            Ok(Item {
                id: r.get(0)?,
                scope: grid.unwrap_or_else(|| linli_wire::COMMUNITY_WIDE.to_string()),
                heads: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Answers a peer's loads: a whole document if the peer has none of it; the changes after
    /// its heads if this device knows them all (nothing if there are none); the changes outside
    /// the peer's hashes when given; otherwise [`Loaded::Unknown`] with this device's hashes.
    pub fn load_for_peer(&self, requests: &[LoadRequest]) -> Result<Vec<Loaded>, StoreError> {
        let mut answers = Vec::with_capacity(requests.len());
        for r in requests {
            let Some((collection, mut doc)) = self.load_doc(&r.id)? else {
                continue;
            };
            let bytes = if let Some(except) = &r.except {
                let except: HashSet<&[u8; 32]> = except.iter().collect();
                let mut bytes = Vec::new();
                for c in doc.get_changes(&[]) {
                    if !except.contains(&c.hash().0) {
                        bytes.extend_from_slice(c.raw_bytes());
                    }
                }
                bytes
            } else if r.since.is_empty() {
                crate::store::save(&mut doc)
            } else {
                let since = decode_heads(&r.since);
                if since.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
                    doc.save_after(&since)
                } else {
                    let hashes = doc.get_changes(&[]).iter().map(|c| c.hash().0).collect();
                    answers.push(Loaded::Unknown {
                        id: r.id.clone(),
                        hashes,
                    });
                    continue;
                }
            };
            if bytes.is_empty() {
                continue;
            }
            let scope = self
                .scope_of(&r.id)?
                .unwrap_or_else(|| linli_wire::COMMUNITY_WIDE.to_string());
            answers.push(Loaded::Doc(PeerDoc {
                scope,
                id: r.id.clone(),
                collection: collection.code().to_string(),
                bytes,
            }));
        }
        Ok(answers)
    }

    fn scope_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        let grid: Option<Option<String>> = self
            .conn()
            .prepare_cached("SELECT grid FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(grid.flatten())
    }
}
