//! Fuzz targets: every parser of bytes or text that comes from outside — people typing, files,
//! other devices, the relay — as a function that must return for any input, never panic, and
//! (for the validators of residents' data) never repeat a number it was given in its error.
//!
//! [`TARGETS`] lists them. `tests/fuzz.rs` runs each for a bounded time (`LINLI_FUZZ_SECS`,
//! default 8 s a target) from its committed corpus (`corpus/<target>/`, which holds the cases
//! earlier issues found), mutating the corpus's inputs and making new ones from a seed it
//! prints. An input that panics is written to the corpus as `crash-<sha256>` and fails the
//! test: committed, it stays a regression case. The same functions suit a coverage-guided
//! fuzzer (cargo-fuzz on a nightly toolchain) where one is available.

use linli_domain::validate::{check_credit_code, check_phone, parse_id_number};
use linli_domain::{Collection, Day};
use linli_wire::relay::{Frames, Reply, Response, Signed, SignedView, peek_membership};

/// A fuzz target: a name (its corpus directory) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("id_number", id_number),
    ("phone", phone),
    ("credit_code", credit_code),
    ("jsonl_record", jsonl_record),
    ("invite_code", invite_code),
    ("ticket", ticket),
    ("peer_frame", peer_frame),
    ("relay_request", relay_request),
    ("relay_reply", relay_reply),
    ("sealed_bundle", sealed_bundle),
    ("stored_snapshot", stored_snapshot),
    ("key_file", key_file),
];

/// The day the validators take as today (fixed: a target is a function of its input).
fn today() -> Day {
    Day::ymd(2026, 12, 1).unwrap_or_else(linli_domain::today)
}

/// The runs of four digits or more in `text` (ASCII or full-width).
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || ('０'..='９').contains(&c) {
            run.push(c);
        } else {
            if run.chars().count() >= 4 {
                runs.push(std::mem::take(&mut run));
            }
            run.clear();
        }
    }
    runs
}

/// Panics if `error` repeats a run of four digits or more of `input`: an error message must
/// name the field and the problem, never a resident's number (个人信息保护法).
fn no_echo(input: &str, error: &str) {
    for run in digit_runs(input) {
        assert!(
            !error.contains(&run),
            "the error repeats digits of its input: {error}"
        );
    }
}

/// An ID number typed or imported (GB 11643).
pub fn id_number(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse_id_number(&text, today()) {
        no_echo(&text, &e);
    }
}

/// A phone number typed or imported.
pub fn phone(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = check_phone(&text) {
        no_echo(&text, &e);
    }
}

/// A unified social credit code (GB 32100) of an organisation.
pub fn credit_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = check_credit_code(&text);
}

/// One line of a JSON Lines import (a roster line or a record as printed by `--json`).
pub fn jsonl_record(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = linli_domain::interchange::parse_line(&text, "c1", today()) {
        let message = e.to_string();
        // A field's value never comes back in the message: numbers of eight digits or more
        // (phones, ID numbers) are the ones that matter.
        for run in digit_runs(&text)
            .into_iter()
            .filter(|r| r.chars().count() >= 8)
        {
            assert!(
                !message.contains(&run),
                "the import error repeats a number of its line: {message}"
            );
        }
    }
}

/// An invitation code, as typed or scanned.
pub fn invite_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = linli_wire::Invite::decode(&text);
}

/// A peer's ticket, as typed or scanned.
pub fn ticket(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = linli_wire::peer::Ticket::decode(&text);
}

/// A frame from a peer (zstd, then a postcard message).
pub fn peer_frame(data: &[u8]) {
    let _ = linli_wire::peer::PeerMsg::from_frame(data);
}

/// A request as the relay receives it: its membership read from the first bytes, then the
/// whole request read in place and its signature checked, or read owned.
pub fn relay_request(data: &[u8]) {
    let _ = peek_membership(data);
    if let Ok(view) = linli_wire::decode::<SignedView<'_>>("request", data) {
        let _ = view.open();
    }
    let _ = linli_wire::decode::<Signed>("request", data);
}

/// What a device receives from the relay: a stream of frames, each a reply, or one response.
pub fn relay_reply(data: &[u8]) {
    let _ = linli_wire::decode::<Response>("response", data);
    let mut frames = Frames::default();
    // In two pieces, as bytes arrive.
    let half = data.len() / 2;
    frames.extend(&data[..half]);
    while let Ok(Some(f)) = frames.next_frame() {
        let _ = linli_wire::decode::<Reply>("reply", &f);
    }
    frames.extend(&data[half..]);
    while let Ok(Some(f)) = frames.next_frame() {
        let _ = linli_wire::decode::<Reply>("reply", &f);
    }
}

/// A sealed bundle whose seal is good but whose content is anything (a member's device could
/// seal anything): decompressed within its bound and decoded.
pub fn sealed_bundle(data: &[u8]) {
    let key = linli_wire::ScopeKey::derive(&[7; 32], "c1-fuzz", "G01");
    if let Ok(sealed) = linli_wire::seal(&key, "c1-fuzz", "G01", data) {
        let _ = linli_wire::open_bundle(&key, "c1-fuzz", "G01", &sealed);
    }
}

/// A document's bytes as another device sends them, read as a record of the collection its
/// first byte picks.
pub fn stored_snapshot(data: &[u8]) {
    const COLLECTIONS: [Collection; 5] = [
        Collection::Household,
        Collection::Sensitive,
        Collection::Request,
        Collection::Task,
        Collection::Notice,
    ];
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let collection = COLLECTIONS[usize::from(*first) % COLLECTIONS.len()];
    let _ = linli_store::store::record_from_bytes("doc", collection, rest);
}

/// A store's key file (`store.key`) as read from disk: damaged or hostile, it is an error that
/// names what is wrong (never a panic, never a value of it).
pub fn key_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = linli_store::keys::parse(&text) {
        let message = e.to_string();
        for field in ["salt", "nonce", "wrapped"] {
            // A hex value of the file is not repeated.
            if let Some(i) = text.find(&format!("\"{field}\":\"")) {
                let value: String = text[i + field.len() + 4..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect();
                assert!(
                    value.len() < 8 || !message.contains(&value),
                    "the error repeats the {field}: {message}"
                );
            }
        }
    }
}
