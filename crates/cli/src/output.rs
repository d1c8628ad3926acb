//! Text for people and JSON for scripts.

use linli_api::Hit;
use linli_store::{HistoryEntry, Row};
use serde::Serialize;
use serde_json::Value;

/// `println!` that ends the process quietly when the reader has gone (`linli list | head`),
/// except in a command that serves until stopped ([`SERVING`]).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err()
            && !$crate::output::SERVING.load(std::sync::atomic::Ordering::Relaxed)
        {
            std::process::exit(0);
        }
    }};
}

/// Set by commands that run until stopped (`p2p serve`, `sync --watch`): their report lines are
/// a log, and a reader that has gone does not stop them.
pub static SERVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One line of what a sync did: `{what} {with}: sent … · received … · ↑ ↓ … · round trips · ms`;
/// `wire` says how the bytes were counted (e.g. ` (UDP)`).
pub fn say_counts(what: &str, with: &str, r: &linli_sync::relay_client::SyncReport, wire: &str) {
    say!(
        "{what} {with}: 发送 sent {} documents · 收到 received {} new, {} changed, {} unchanged · ↑ {} B ↓ {} B{wire} · {} round trips · {} ms",
        r.sent,
        r.created,
        r.changed,
        r.unchanged,
        r.bytes_up,
        r.bytes_down,
        r.round_trips,
        r.ms
    );
    if r.set_aside > 0 {
        say!(
            "注意 Note: {} 份收到的数据无法解读，已搁置 {} received blob(s) could not be read and were set aside (linli set-aside)",
            r.set_aside,
            r.set_aside
        );
    }
}

/// Output settings.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// Print JSON.
    pub json: bool,
    /// Show sensitive values in full.
    pub reveal: bool,
}

impl Out {
    /// Prints `value` as JSON, or runs `human`.
    pub fn emit<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce()) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => say!("{s}"),
                Err(e) => eprintln!("error: cannot print JSON: {e}"),
            }
        } else {
            human();
        }
    }
}

/// Text from a record made safe for a terminal: control characters (terminal escapes, line
/// breaks) and direction overrides are shown as `\u{1b}` instead of acting. Records are
/// validated when written here, but a document received from another device may hold
/// anything.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let acts =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(acts) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if acts(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Columns on a terminal: CJK characters take two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

fn pad(s: &str, w: usize) -> String {
    let n = width(s);
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// A table of list rows.
pub fn print_rows(rows: &[Row]) {
    let w_id = rows.iter().map(|r| width(&r.id)).max().unwrap_or(2).max(2);
    let w_title = rows
        .iter()
        .map(|r| width(&r.title))
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    for r in rows {
        say!(
            "{}  {}  {}  {}",
            pad(&escape(&r.id), w_id),
            pad(&escape(r.grid.as_deref().unwrap_or("-")), 4),
            pad(&escape(&r.title), w_title),
            escape(&r.detail)
        );
    }
    say!("共 {} 条 · {} rows", rows.len(), rows.len());
}

/// Search results.
pub fn print_hits(hits: &[Hit]) {
    if hits.is_empty() {
        say!("未找到 No match");
        return;
    }
    let w_name = hits
        .iter()
        .map(|h| width(&h.name))
        .max()
        .unwrap_or(4)
        .max(4);
    for h in hits {
        say!(
            "{}  {}  {}  {}  {}  ({})",
            pad(&escape(&h.id), 10),
            pad(&escape(&h.name), w_name),
            pad(&escape(h.grid.as_deref().unwrap_or("-")), 4),
            escape(&h.address),
            h.relation.map_or("-", |r| r.zh()),
            h.matched.code()
        );
    }
}

fn print_value(key: &str, v: &Value, indent: usize) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            if !key.is_empty() {
                say!("{pad}{}:", escape(key));
            }
            let inner = if key.is_empty() { indent } else { indent + 1 };
            for (k, v) in map {
                print_value(k, v, inner);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            say!("{pad}{}: ({})", escape(key), items.len());
            for (i, item) in items.iter().enumerate() {
                print_value(&format!("[{i}]"), item, indent + 1);
            }
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(scalar).collect();
            say!("{pad}{}: [{}]", escape(key), parts.join(", "));
        }
        other => say!("{pad}{}: {}", escape(key), scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s).into_owned(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A record as indented `key: value` lines.
pub fn print_record(v: &Value) {
    print_value("", v, 0);
}

/// A history, oldest first.
pub fn print_history(entries: &[HistoryEntry]) {
    for e in entries {
        say!(
            "{}  {} @ {}  {}  [{}]",
            e.time,
            escape(if e.by.is_empty() { "?" } else { &e.by }),
            escape(&e.device),
            escape(&e.what),
            escape(&e.doc)
        );
        for c in e.changes.iter().take(20) {
            say!("    {}", escape(c));
        }
        if e.changes.len() > 20 {
            say!("    … {} more", e.changes.len() - 20);
        }
    }
    say!("共 {} 次修改 · {} changes", entries.len(), entries.len());
}

/// The audit log as CSV for an auditor (UTF-8 with a byte-order mark, so that Excel and WPS
/// read the Chinese): one row per entry, newest first. A cell that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`) is prefixed with `'`.
pub fn audit_csv(entries: &[linli_store::AuditEntry]) -> String {
    fn cell(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from(
        "\u{feff}序号 seq,时间 time,使用人 user,设备 device,操作 action,对象 record,字段 field,原因 reason,hash\r\n",
    );
    for e in entries {
        let row = [
            e.seq.to_string(),
            e.at.to_china().format("%Y-%m-%d %H:%M:%S").to_string(),
            e.user.clone(),
            e.device.clone(),
            e.action.clone(),
            e.target.clone(),
            e.detail.clone(),
            e.reason.clone(),
            e.hash.clone(),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// The audit log, newest first: when, who, what, whose record, which field (never a value).
pub fn print_audit(entries: &[linli_store::AuditEntry]) {
    for e in entries {
        say!(
            "{}  {}  {}  {}  {}{}",
            e.at.to_china().format("%Y-%m-%d %H:%M:%S"),
            escape(if e.user.is_empty() { "?" } else { &e.user }),
            escape(&e.action),
            escape(&e.target),
            escape(&e.detail),
            if e.reason.is_empty() {
                String::new()
            } else {
                format!("  原因 reason: {}", escape(&e.reason))
            }
        );
    }
    say!("共 {} 条 · {} entries", entries.len(), entries.len());
}
