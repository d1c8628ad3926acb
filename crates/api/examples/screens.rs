//! Times the queries behind the app's screens on an existing store: `cargo run --release -p linli-api --example screens -- DIR`.
#![allow(missing_docs, clippy::unwrap_used)]
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let api = linli_api::Api::open(&dir, linli_testkit::key()).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let rows = api.households(&Default::default()).unwrap();
        let a = t.elapsed();
        let t = std::time::Instant::now();
        let o = api.overview().unwrap();
        let b = t.elapsed();
        let t = std::time::Instant::now();
        let c = api.compounds().unwrap();
        let cc = t.elapsed();
        let t = std::time::Instant::now();
        let h = api.search("zw", 50).unwrap();
        let d = t.elapsed();
        let t = std::time::Instant::now();
        let r = api.requests(&Default::default()).unwrap();
        let e = t.elapsed();
        println!(
            "households {} rows {:?} · overview {} {:?} · tree {} {:?} · search {} {:?} · requests {} {:?}",
            rows.len(),
            a,
            o.households,
            b,
            c.len(),
            cc,
            h.len(),
            d,
            r.len(),
            e
        );
    }
}
