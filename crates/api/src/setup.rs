//! Making a store a community's: creating the community, importing records (all or nothing),
//! filling a demo community.

use std::collections::HashMap;
use std::path::Path;

use linli_domain::interchange::parse_line;
use linli_domain::{AnyRecord, Community, Timestamp};
use linli_store::{Store, StoreError, WriteReport};

use crate::{ApiError, demo};

/// Creates the store's community (this device becomes its root: committee staff). Its id is
/// `label` (default `c`) followed by a tag of this device's key.
pub fn init(
    store: &mut Store,
    name: &str,
    street: &str,
    label: Option<&str>,
    user: Option<&str>,
    now: Timestamp,
) -> Result<Community, ApiError> {
    // The id ends with a tag of this device's key, the community's root key: no one else can
    // register it on a relay first (see `linli_wire::community_id`).
    let root = store.device_key()?.public();
    let id = linli_wire::community_id(label.unwrap_or("c"), &root);
    let mut c = Community::new(&id, name.trim(), now);
    c.street = street.trim().to_string();
    if let Err(errors) = linli_domain::Record::validate(&c, now.day()) {
        return Err(StoreError::Invalid { id, errors }.into());
    }
    if let Some(user) = user {
        store.set_identity(user, None)?;
    }
    store.init_community(c.clone())?;
    Ok(c)
}

/// Parses every line (1-based numbers in errors) and checks that no id repeats; `today` is
/// what dates are checked against (no birth in the future).
pub fn parse_all(
    lines: &[String],
    community: &str,
    file: &str,
    today: linli_domain::Day,
) -> Result<Vec<AnyRecord>, StoreError> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(lines.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let records = parse_line(line, community, today).map_err(|error| StoreError::Import {
            file: file.to_string(),
            line: n,
            error,
        })?;
        for r in records {
            if let Some(first) = seen.insert(r.id().to_string(), n) {
                return Err(StoreError::Duplicate {
                    file: file.to_string(),
                    line: n,
                    id: r.id().to_string(),
                    first,
                });
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Imports lines in one transaction; the community document gains the grids and compounds
/// the records use.
pub fn import_lines(
    store: &mut Store,
    lines: &[String],
    file: &str,
    message: &str,
    today: linli_domain::Day,
) -> Result<WriteReport, ApiError> {
    let community = store.community_id()?.ok_or(ApiError::NoCommunity)?;
    let mut records = parse_all(lines, &community, file, today)?;
    let mut c = store.community()?;
    demo::add_grids_and_compounds(&mut c, &records);
    records.push(AnyRecord::Community(c));
    Ok(store.put(records, message)?)
}

/// Imports a JSON Lines file in one transaction, checking dates against `today`.
pub fn import_file(
    store: &mut Store,
    file: &Path,
    message: &str,
    today: linli_domain::Day,
) -> Result<WriteReport, ApiError> {
    let text = std::fs::read_to_string(file).map_err(|source| ApiError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    import_lines(store, &lines, &file.display().to_string(), message, today)
}

/// Fills a store with the demo community (幸福社区, 和平街道) as of the instant `as_of` (see
/// [`demo::as_of_now`]), deterministic for `seed` and `as_of`. The store must have no
/// households yet.
pub fn fill_demo(
    store: &mut Store,
    households: usize,
    tasks: usize,
    seed: u64,
    user: Option<&str>,
    as_of: linli_domain::Timestamp,
) -> Result<(WriteReport, Vec<String>), ApiError> {
    if store.community_id()?.is_none() {
        init(
            store,
            "幸福社区",
            "和平街道",
            Some(&format!("demo{seed}")),
            user,
            as_of,
        )?;
    }
    let community = store.community()?;
    if store.household_count()? > 0 {
        return Err(ApiError::invalid(
            "households",
            "this store already has households; a demo fills a new store only",
        ));
    }
    let lines = demo::generate(&community, households, tasks, seed, as_of);
    let report = import_lines(
        store,
        &lines,
        "demo",
        &format!("demo --seed {seed}"),
        as_of.day(),
    )?;
    Ok((report, lines))
}
