//! Runs every fuzz target of `linli-fuzz` for a bounded time: first its committed corpus
//! (`corpus/<target>/`: the cases earlier issues found, and valid inputs to start from), then
//! inputs made by mutating them (bytes flipped, inserted, removed, repeated, spliced from
//! another input, truncated) and made up from scratch, from a seed it prints.
//!
//! `LINLI_FUZZ_SECS` sets the time per target (default 8 s: the whole step stays under two
//! minutes); `LINLI_FUZZ_SEED` repeats a run (each target prints its seed first). An input that
//! panics is written to the corpus as `crash-<sha256>` (or under `LINLI_FUZZ_CRASH_DIR`) and
//! fails the test, naming the file and giving the input in hex: commit it, and it is replayed
//! by every run from then on. A target that hangs holds its test; each call is bounded by the
//! parsers' own limits (frame and bundle sizes), which is what a hang would break.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Where a crashing input is written: the corpus (to commit), or `LINLI_FUZZ_CRASH_DIR`.
fn crash_dir(target: &str) -> PathBuf {
    std::env::var_os("LINLI_FUZZ_CRASH_DIR")
        .map_or_else(|| corpus_dir(target), |d| PathBuf::from(d).join(target))
}

/// The committed inputs of `target`, in a stable order.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// Runs `f` on `input`; a panic saves the input to the corpus and fails the test, with the
/// input itself (hex) in the message: a failure on CI can be reproduced from its log alone.
fn check(target: &str, f: fn(&[u8]), input: &[u8], seed: u64) {
    if std::panic::catch_unwind(|| f(input)).is_err() {
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let name = format!("crash-{}", hex(&Sha256::digest(input)));
        let path = crash_dir(target).join(&name);
        let saved = std::fs::create_dir_all(crash_dir(target))
            .and_then(|()| std::fs::write(&path, input))
            .map_or_else(
                |e| format!("could not be saved to {} ({e})", path.display()),
                |()| format!("saved as {}", path.display()),
            );
        panic!(
            "fuzz target {target} panicked on {} bytes (LINLI_FUZZ_SEED={seed}), {saved}: commit \
             it as a regression case and fix the parser. The input, hex: {}",
            input.len(),
            hex(&input[..input.len().min(4096)])
        );
    }
}

/// Bytes that often matter to parsers: lengths, signs, UTF-8 leads, digits, separators.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, 0xfe, 0xc0, 0xe0, 0xef, 0xf0, b'0', b'9', b'X', b'x', b'"', b'{', b'}',
    b'[', b']', b',', b':', b'\\', b'\n', b'-', b'.', b' ',
];

/// Text pieces that matter to the text parsers: full-width digits and X, Chinese, escapes.
const PIECES: &[&str] = &[
    "０",
    "９",
    "Ｘ",
    "中",
    "王",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "１１０１０１",
    "e+17",
    "\"id_number\":",
    "\"phone\":",
    "\"members\":[",
    "null",
    "1.10105E+17",
    "LINLI2",
    "LINLI1",
];

fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4usize) {
        let at = if out.is_empty() {
            0
        } else {
            rng.random_range(0..out.len())
        };
        match rng.random_range(0..9u8) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.random_range(0..8u8),
            1 if !out.is_empty() => out[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => out.insert(at, rng.random()),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            4 if !out.is_empty() => {
                let end = (at + rng.random_range(1..=16usize)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let from = rng.random_range(0..other.len());
                let end = (from + rng.random_range(1..=32usize)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            6 => out.truncate(at),
            7 => {
                let piece = PIECES[rng.random_range(0..PIECES.len())].as_bytes();
                out.splice(at..at, piece.iter().copied());
            }
            _ => {
                let n = rng.random_range(0..64usize);
                out.splice(at..at, (0..n).map(|_| rng.random::<u8>()));
            }
        }
    }
    out
}

fn fuzz(target: &str, f: fn(&[u8])) {
    let seeds = corpus(target);
    assert!(
        !seeds.is_empty(),
        "no committed corpus for {target} in {}",
        corpus_dir(target).display()
    );
    for input in &seeds {
        check(target, f, input, 0);
    }
    let budget = std::env::var("LINLI_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(Duration::from_secs(8), Duration::from_secs_f64);
    let seed = std::env::var("LINLI_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{target}: LINLI_FUZZ_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let input = if rng.random_bool(0.9) {
            let a = &seeds[rng.random_range(0..seeds.len())];
            let b = &seeds[rng.random_range(0..seeds.len())];
            mutate(&mut rng, a, b)
        } else {
            let n = rng.random_range(0..256usize);
            (0..n).map(|_| rng.random::<u8>()).collect()
        };
        check(target, f, &input, seed);
        runs += 1;
    }
    println!(
        "{target}: {} corpus inputs, then {runs} made in {:.1} s (LINLI_FUZZ_SEED={seed})",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

// One test per target, so that they run in parallel and each names its own failure.
macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name), linli_fuzz::$name);
            }
        )*

        /// Every target of the library has its test here.
        #[test]
        fn every_target_is_run() {
            let here = [$(stringify!($name)),*];
            for (name, _) in linli_fuzz::TARGETS {
                assert!(here.contains(name), "no test runs the fuzz target {name}");
            }
        }
    };
}

targets!(
    id_number,
    phone,
    credit_code,
    jsonl_record,
    invite_code,
    ticket,
    peer_frame,
    relay_request,
    relay_reply,
    sealed_bundle,
    stored_snapshot,
    key_file,
);

/// Writes the valid starting inputs of the corpus (`cargo test -p linli-fuzz --test fuzz --
/// --ignored write_seed_corpus`): real invitation codes, tickets, peer frames, signed relay
/// requests and replies, a sealed bundle's content and a household's document, made by a real
/// store. The text inputs (and the cases earlier issues found) are written by hand.
#[test]
#[ignore = "writes the corpus: run by hand when a format changes"]
fn write_seed_corpus() {
    use linli_wire::peer::{PeerDoc, PeerMsg, Ticket};
    use linli_wire::relay::{Blob, BlobKind, Body, Reply, Request, Response, Signed, frame};
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(corpus_dir(target)).unwrap();
        std::fs::write(corpus_dir(target).join(name), bytes).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let mut store = linli_testkit::roster::rooted_store(dir.path());
    let community = store.community_id().unwrap().unwrap();
    store
        .put(
            linli_testkit::roster::households_in(&community, 0..3),
            "seed",
        )
        .unwrap();
    let me = store.identity().unwrap();
    let invite = store
        .invite(
            linli_wire::Role::Grid,
            &["G01".to_string()],
            Some("http://127.0.0.1:8080"),
        )
        .unwrap();
    write("invite_code", "valid-grid", invite.encode().as_bytes());
    let ticket = Ticket {
        key: me.key.public(),
        addrs: vec![
            "127.0.0.1:4433".parse().unwrap(),
            "[::1]:4433".parse().unwrap(),
        ],
    };
    write("ticket", "valid", ticket.encode().as_bytes());
    let doc = store.export_doc("hh-000001").unwrap();
    write(
        "stored_snapshot",
        "valid-household",
        &[[0u8].as_slice(), &doc].concat(),
    );
    let msgs = [
        PeerMsg::Hello {
            version: 1,
            membership: me.membership.clone(),
        },
        PeerMsg::Want {
            need: vec![[3; 32]],
            mine: vec![("hh-000001".into(), vec![1; 32])],
        },
        PeerMsg::Docs {
            docs: vec![PeerDoc {
                scope: "G01".into(),
                id: "hh-000001".into(),
                collection: "households".into(),
                bytes: doc.clone(),
            }],
            heads: vec![],
            hashes: vec![],
            last: true,
        },
        PeerMsg::Refused("not a member".into()),
    ];
    for (i, m) in msgs.iter().enumerate() {
        write("peer_frame", &format!("valid-{i}"), &m.to_frame().unwrap());
    }
    let bodies = [
        Body::Pull {
            since: 7,
            max_bytes: 1 << 20,
        },
        Body::Drop { seqs: vec![1, 2] },
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let request = Request {
            membership: me.membership.clone(),
            counter: 1_000 + i as u64,
            body,
        };
        let bytes = linli_wire::encode(&Signed::sign(&me.key, &request));
        write("relay_request", &format!("valid-{i}"), &bytes);
    }
    let key = store.scope_key("G01").unwrap().unwrap();
    let sealed = linli_wire::seal_bundle(
        &key,
        &community,
        "G01",
        &linli_wire::Bundle {
            docs: vec![linli_wire::DocPayload {
                id: "hh-000001".into(),
                collection: "households".into(),
                bytes: doc.clone(),
            }],
        },
    )
    .unwrap();
    let packed = linli_wire::open(&key, &community, "G01", &sealed).unwrap();
    write("sealed_bundle", "valid", &packed);
    let replies = [
        Reply::Answer(Response::Pulled {
            blobs: vec![Blob {
                seq: 9,
                scope: "G01".into(),
                kind: BlobKind::Changes,
                sealed: sealed.clone(),
                sender: me.key.public(),
            }],
            next: 9,
            more: false,
        }),
        Reply::Answer(Response::Pushed { seqs: vec![4, 5] }),
        Reply::Refused {
            status: 409,
            message: "replayed".into(),
        },
    ];
    let stream: Vec<u8> = replies
        .iter()
        .flat_map(|r| frame(&linli_wire::encode(r)))
        .chain(frame(&[]))
        .collect();
    write("relay_reply", "valid-stream", &stream);
    write(
        "relay_reply",
        "valid-response",
        &linli_wire::encode(&Response::Dropped { seqs: vec![3] }),
    );
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/community-60.jsonl");
    let lines = std::fs::read_to_string(fixture).unwrap();
    for (i, line) in lines.lines().take(4).enumerate() {
        write("jsonl_record", &format!("valid-{i}"), line.as_bytes());
    }
}
