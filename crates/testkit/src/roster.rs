//! A community and roster lines in the
//! generator's format, for tests of the store and of sync.

use linli_domain::interchange::parse_line;
use linli_domain::roster::Grid;
use linli_domain::validate::id_check_char;
use linli_domain::{AnyRecord, Community, Day, Timestamp};
use linli_store::Store;

/// A roster line (the generator's format) for household `i`, with a valid ID number.
pub fn roster_line(i: usize) -> String {
    let birth = format!("19{:02}0{}1{}", 40 + i % 50, 1 + i % 9, i % 10);
    let first17 = format!("320106{birth}{:03}", i % 1000);
    let check = id_check_char(&first17).unwrap_or('0');
    let sex = if (i % 1000) % 2 == 1 { "男" } else { "女" };
    format!(
        r#"{{"kind":"household","id":"hh-{i:06}","grid":"G0{g}","compound":"幸福里小区","building":"{b}","unit":"1","room":"{r}","area_m2":88.5,"tenure":"自住","members":[{{"id":"p-{i:07}","name":"王{n}","gender":"{sex}","birth":"{y}-0{m}-1{d}","id_number":"{first17}{check}","phone":"139{i:08}","relation":"户主","tags":["独居老人"],"notes":""}}]}}"#,
        g = 1 + i % 3,
        b = 1 + i % 20,
        r = 101 + i % 30,
        n = ["伟", "芳", "娜", "敏", "静"][i % 5],
        y = 1940 + i % 50,
        m = 1 + i % 9,
        d = i % 10,
    )
}

/// The households of `range` (with their sensitive documents), in community `c1`.
pub fn households(range: std::ops::Range<usize>) -> Vec<AnyRecord> {
    let today = Day::parse("2026-11-20").unwrap_or_else(|e| panic!("{e}"));
    range
        .flat_map(|i| parse_line(&roster_line(i), "c1", today).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// A store in `dir` whose device created community `c1` ([`community`]).
pub fn new_store(dir: &std::path::Path) -> Store {
    let mut store = Store::open(dir, &crate::key()).unwrap_or_else(|e| panic!("{e}"));
    store
        .init_community(community())
        .unwrap_or_else(|e| panic!("{e}"));
    store
}

/// Community `c1` with grids G01–G03 (the roster lines spread households over them).
pub fn community() -> Community {
    let mut c = Community::new("c1", "幸福社区", Timestamp(0));
    c.grids = (1..=3)
        .map(|g| Grid {
            id: format!("G0{g}"),
            name: format!("第{g}网格"),
            worker: String::new(),
        })
        .collect();
    c
}

/// The households of `range`, in community `community`.
pub fn households_in(community: &str, range: std::ops::Range<usize>) -> Vec<AnyRecord> {
    let today = Day::parse("2026-11-20").unwrap_or_else(|e| panic!("{e}"));
    range
        .flat_map(|i| {
            parse_line(&roster_line(i), community, today).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// A store whose community (grids G01–G03) has an id made from its device's key, as a relay
/// requires (see `linli_wire::community_id`): its device is the community's root.
pub fn rooted_store(dir: &std::path::Path) -> Store {
    let mut store = Store::open(dir, &crate::key()).unwrap_or_else(|e| panic!("{e}"));
    let root = store
        .device_key()
        .unwrap_or_else(|e| panic!("{e}"))
        .public();
    let mut c = community();
    c.id = linli_wire::community_id("c1", &root);
    store.init_community(c).unwrap_or_else(|e| panic!("{e}"));
    store
}
