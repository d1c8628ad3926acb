//! Validation: every error names the field it is about (`members[2].id_number`), so an import or
//! an edit can tell a person exactly what to fix.

use std::fmt;

use chrono::Datelike;

use crate::value::Day;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `name` or `checklist[1].item`.
    pub field: String,
    /// What is wrong, in English, naming the offending value only when it is not sensitive.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the problems found in one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single error.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
    /// The first error's field (handy in tests).
    pub fn first_field(&self) -> &str {
        self.0.first().map(|e| e.field.as_str()).unwrap_or("")
    }
    /// Whether some error is about `field`.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects field errors under a path prefix.
#[derive(Debug, Default)]
pub struct Validator {
    prefix: String,
    errors: Vec<FieldError>,
}

impl Validator {
    /// A validator for a top-level record.
    pub fn new() -> Self {
        Self::default()
    }

    fn path(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else if field.starts_with('[') {
            format!("{}{}", self.prefix, field)
        } else {
            format!("{}.{}", self.prefix, field)
        }
    }

    /// Records an error on `field`.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let field = self.path(field);
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// Records an error when `value` is blank.
    pub fn require(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(field, "is required");
        }
    }

    /// Records `result`'s error, if any, on `field`.
    pub fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(field, message);
        }
    }

    /// Validates a nested part under `field` (e.g. `members[2]`).
    pub fn nested(&mut self, field: &str, f: impl FnOnce(&mut Validator)) {
        let mut inner = Validator {
            prefix: self.path(field),
            errors: Vec::new(),
        };
        f(&mut inner);
        self.errors.append(&mut inner.errors);
    }

    /// Ends validation.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// GB 11643 weights of the first 17 digits.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters, indexed by the weighted sum mod 11.
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// The GB 11643 check character for the first 17 digits, `None` if they are not 17 digits.
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(char::from(ID_CHECK[(sum % 11) as usize]))
}

/// Sex encoded in an ID number's sequence digit: odd = male, even = female.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSex {
    /// odd sequence digit
    Male,
    /// even sequence digit
    Female,
}

/// What an 18-digit resident ID number (居民身份证号码) says about its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdNumberInfo {
    /// The 6-digit administrative region code.
    pub region: u32,
    /// The birth date encoded in digits 7–14.
    pub birth: Day,
    /// The sex encoded by the parity of digit 17.
    pub sex: IdSex,
}

/// Checks an 18-digit resident ID number on its own: form, region, birth date, check digit.
/// The messages never repeat the number, nor any part of it (it is sensitive).
pub fn parse_id_number(id: &str, today: Day) -> Result<IdNumberInfo, String> {
    let id = id.trim();
    if id.len() == 15 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is a 15-digit first-generation number; enter the 18-digit number".into());
    }
    let chars = id.chars().count();
    if chars != 18 {
        return Err(format!("must have 18 characters, has {chars}"));
    }
    // 18 characters, but not necessarily 18 bytes (a full-width digit, a Chinese character):
    // only ASCII is cut by byte below.
    if !id.is_ascii() {
        return Err(
            "may hold only the digits 0-9 and a final X (no full-width digits, letters or spaces)"
                .into(),
        );
    }
    let (first17, last) = id.split_at(17);
    if !first17.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the first 17 characters must be digits".into());
    }
    let region: u32 = first17[0..6]
        .parse()
        .map_err(|_| "bad region code".to_string())?;
    if !(110_000..=829_999).contains(&region) {
        return Err(
            "its region code (the first 6 digits) is not a Chinese administrative region".into(),
        );
    }
    let (y, m, d) = (&first17[6..10], &first17[10..12], &first17[12..14]);
    let birth = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => Day::ymd(y, m, d),
        _ => None,
    }
    .ok_or_else(|| "its birth date part (characters 7-14) is not a real date".to_string())?;
    if birth.0.year() < 1890 || birth > today {
        return Err(
            "its birth date part (characters 7-14) is before 1890 or in the future".to_string(),
        );
    }
    let expected = id_check_char(first17).ok_or_else(|| "bad digits".to_string())?;
    let got = last
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or(' ');
    if got != expected {
        return Err(
            "its check digit (the last character) does not match the first 17 digits: one of \
             them is mistyped"
                .to_string(),
        );
    }
    let seq = first17.as_bytes()[16] - b'0';
    let sex = if seq % 2 == 1 {
        IdSex::Male
    } else {
        IdSex::Female
    };
    Ok(IdNumberInfo { region, birth, sex })
}

/// Mainland mobile (`1[3-9]` + 9 digits) or landline (`0` + area code + number, optional `-`).
pub fn check_phone(phone: &str) -> Result<(), String> {
    let p = phone.trim();
    let digits: String = p.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("may contain only digits, spaces and '-'".into());
    }
    let b = digits.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    let landline = (10..=12).contains(&b.len()) && b[0] == b'0' && b[1] != b'0';
    if mobile || landline {
        Ok(())
    } else {
        Err(format!(
            "is not a mainland mobile (11 digits starting 13–19) or landline number ({} digits)",
            b.len()
        ))
    }
}

/// The GB 32100 alphabet of unified social credit codes (no I, O, S, V, Z).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The GB 32100 check character for the first 17 characters of a credit code.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in first17.bytes().zip(USCC_WEIGHTS) {
        let v = USCC_ALPHABET
            .iter()
            .position(|a| *a == b.to_ascii_uppercase())? as u32;
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(char::from(USCC_ALPHABET[check as usize]))
}

/// Checks an 18-character unified social credit code (统一社会信用代码, GB 32100).
pub fn check_credit_code(code: &str) -> Result<(), String> {
    let code = code.trim();
    if code.len() != 18 || !code.is_ascii() {
        return Err(format!(
            "must have 18 characters, has {}",
            code.chars().count()
        ));
    }
    let (first17, last) = code.split_at(17);
    let expected = uscc_check_char(first17).ok_or_else(|| {
        "contains a character outside 0-9 and A-Y without I, O, S, V, Z".to_string()
    })?;
    let got = last
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or(' ');
    if got != expected {
        return Err(
            "its check character (the last one) does not match the first 17: one of them is \
             mistyped"
                .into(),
        );
    }
    Ok(())
}

/// The longest one-line text (a name, an address part, a title), in characters.
pub const MAX_LINE: usize = 200;
/// The longest multi-line text (notes, a notice's body, a comment), in characters.
pub const MAX_TEXT: usize = 10_000;
/// The most attention tags one person or household carries.
pub const MAX_TAGS: usize = 20;
/// The longest attention tag, in characters.
pub const MAX_TAG: usize = 20;
/// The longest record id.
pub const MAX_ID: usize = 128;

/// Fields that may span lines (by the last name of their path).
const MULTILINE: &[&str] = &[
    "notes",
    "note",
    "body",
    "comment",
    "description",
    "follow_up",
    "health",
    "message",
];

/// Bidirectional overrides and isolates: they reorder what is shown around them (a name that
/// reads differently on screen than in the file).
fn bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a one-line text: at most `max` characters, no control characters (line breaks,
/// tabs, terminal escapes) or direction overrides. The message names the problem, never the
/// text.
pub fn check_line(text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if n > max {
        return Err(format!("is longer than {max} characters ({n})"));
    }
    if let Some(i) = text.chars().position(|c| c.is_control() || bidi_control(c)) {
        return Err(format!(
            "holds a control character (a line break, tab or terminal escape) at character {}",
            i + 1
        ));
    }
    Ok(())
}

/// Checks a multi-line text: at most `max` characters; line breaks and tabs are allowed,
/// other control characters are not.
pub fn check_text(text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if n > max {
        return Err(format!("is longer than {max} characters ({n})"));
    }
    if let Some(i) = text
        .chars()
        .position(|c| (c.is_control() && !matches!(c, '\n' | '\t' | '\r')) || bidi_control(c))
    {
        return Err(format!(
            "holds a control character (a terminal escape) at character {}",
            i + 1
        ));
    }
    Ok(())
}

/// Checks a record id: 1 to 128 ASCII letters, digits, `-`, `_` or `.`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID {
        return Err(format!("is longer than {MAX_ID} characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may hold only ASCII letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Checks a grid id: 1 to 32 ASCII letters, digits, `-`, `_` or `.` (`G01`); `*` is the
/// community-wide scope, not a grid.
pub fn check_grid(grid: &str) -> Result<(), String> {
    if grid.trim().is_empty() {
        return Err("is empty".into());
    }
    if grid == "*" {
        return Err("`*` is the whole community, not a grid: give a grid id such as G01".into());
    }
    if grid.len() > 32
        || !grid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "a grid id has 1 to 32 ASCII letters, digits, '-', '_' or '.' (such as G01)".into(),
        );
    }
    Ok(())
}

/// Checks a list of attention tags: at most [`MAX_TAGS`], each of at most [`MAX_TAG`]
/// characters on one line, none twice. Linear in the number of tags (a long list is refused
/// before its tags are looked at).
pub fn check_tags(v: &mut Validator, field: &str, tags: &[String]) {
    if tags.len() > MAX_TAGS {
        v.error(
            field,
            format!("has {} tags; at most {MAX_TAGS}", tags.len()),
        );
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        let here = format!("{field}[{i}]");
        if t.trim().is_empty() {
            v.error(&here, "is empty");
        } else if let Err(e) = check_line(t, MAX_TAG) {
            v.error(&here, e);
        } else if !seen.insert(t.trim()) {
            v.error(&here, "is listed twice");
        }
    }
}

/// Checks every text of a record, walking its JSON form: one-line fields with
/// [`check_line`] (at most [`MAX_LINE`] characters), the fields in [`MULTILINE`] with
/// [`check_text`] (at most [`MAX_TEXT`]); map keys (person ids) as one-line texts. Errors name
/// the field's path, never its text.
pub fn check_texts(v: &mut Validator, value: &serde_json::Value) {
    fn walk(v: &mut Validator, path: &str, key: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                let checked = if MULTILINE.contains(&key) {
                    check_text(s, MAX_TEXT)
                } else {
                    check_line(s, MAX_LINE)
                };
                if let Err(e) = checked {
                    v.error(path, e);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), key, item);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if check_line(k, MAX_LINE).is_err() {
                        // Named by where it is: the key itself is not repeated.
                        let at = if path.is_empty() {
                            "(the record)"
                        } else {
                            path
                        };
                        v.error(
                            at,
                            "holds a key with a control character or over 200 characters",
                        );
                        continue;
                    }
                    walk(v, &here, k, item);
                }
            }
            _ => {}
        }
    }
    walk(v, "", "", value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Day {
        Day::ymd(2026, 11, 24).unwrap()
    }

    #[test]
    fn valid_id_numbers_pass_and_report_birth_and_sex() {
        // The standard's own example, and one from the benchmark generator.
        let info = parse_id_number("11010519491231002X", today()).unwrap();
        assert_eq!(info.birth, Day::ymd(1949, 12, 31).unwrap());
        assert_eq!(info.sex, IdSex::Female);
        assert_eq!(info.region, 110105);
        let info = parse_id_number("320106198001010015", today());
        // check digit computed independently: 3*7+2*9+0*10+1*5+0*8+6*4+1*2+9*1+8*6+0*3+0*7+1*9+0*10+1*5+0*8+0*4+1*2 = 143; 143 % 11 = 0 -> '1'
        let e = info.unwrap_err();
        assert!(e.contains("check digit"), "{e}");
        assert!(!e.contains('5') && !e.contains("320106"), "{e}");
        assert!(parse_id_number("320106198001010011", today()).is_ok());
        assert!(
            parse_id_number("11010519491231002x", today()).is_ok(),
            "lower-case x is accepted"
        );
    }

    #[test]
    fn invalid_id_numbers_are_rejected_with_the_reason() {
        let e = |s: &str| parse_id_number(s, today()).unwrap_err();
        assert!(e("110105194912310021").contains("check digit"));
        assert!(e("1101051949123100").contains("18 characters"));
        assert!(e("110105490231002").contains("15-digit"));
        assert!(
            e("11010519490230002X").contains("not a real date"),
            "Feb 30th"
        );
        assert!(e("11010530001231002X").contains("in the future"));
        assert!(e("01010519491231002X").contains("region"));
        assert!(e("1101051949A231002X").contains("digits"));
    }

    #[test]
    fn phones() {
        assert!(check_phone("13812345678").is_ok());
        assert!(check_phone("025-84561234").is_ok());
        assert!(check_phone("12812345678").is_err());
        assert!(check_phone("1381234567").is_err());
        assert!(check_phone("138-1234-5678x").is_err());
    }

    #[test]
    fn credit_codes() {
        // A well-known published code (Tencent Technology (Shenzhen)).
        assert!(check_credit_code("9144030071526726XG").is_ok());
        assert!(check_credit_code("9144030071526726XA").is_err());
        assert!(check_credit_code("9144030071526726X").is_err());
        assert!(check_credit_code("9I44030071526726XG").is_err());
    }

    /// Found by the hardening review: a character of more than one byte at positions 14-16
    /// made the parser cut inside it and panic, printing the number.
    #[test]
    fn id_numbers_with_wide_characters_are_refused_not_panicked_on() {
        for id in [
            "1101011999022320中X",
            "110101199902232０0X",
            "11010119990223😀0X",
            "1101011999022é20X",
            "110101199902232\u{a0}0X",
            "１１０１０５１９４９１２３１００２Ｘ",
            "11010519491231002\u{301}",
        ] {
            let e = parse_id_number(id, today()).unwrap_err();
            assert!(!e.contains("110101") && !e.contains("1999"), "{e}");
        }
    }

    #[test]
    fn lines_and_texts_refuse_control_characters_and_length() {
        assert!(check_line("王芳", 40).is_ok());
        assert!(check_line("a\nb", 40).is_err());
        assert!(check_line("\u{1b}[31m红", 40).is_err());
        assert!(check_line("abc\u{202E}cba", 40).is_err());
        assert!(check_line(&"长".repeat(41), 40).is_err());
        assert!(check_text("第一行\n第二行\t", 100).is_ok());
        assert!(check_text("\u{1b}]0;title\u{7}", 100).is_err());
        let mut v = Validator::new();
        let tags: Vec<String> = (0..16_000).map(|i| format!("t{i}")).collect();
        check_tags(&mut v, "tags", &tags);
        let e = v.finish().unwrap_err();
        assert_eq!(e.0.len(), 1, "one error for a list too long: {e}");
        let mut v = Validator::new();
        check_tags(
            &mut v,
            "tags",
            &["低保".into(), "低保".into(), "".into(), "a\nb".into()],
        );
        let e = v.finish().unwrap_err();
        assert!(
            e.has("tags[1]") && e.has("tags[2]") && e.has("tags[3]"),
            "{e}"
        );
    }

    #[test]
    fn texts_of_a_record_are_checked_by_path_without_repeating_them() {
        let value = serde_json::json!({
            "name": "王\u{1b}[2J芳",
            "notes": "第一行\n第二行",
            "members": [{"name": "ok", "notes": "x".repeat(MAX_TEXT + 1)}],
            "people": {"p\n1": {"phone": "138"}},
        });
        let mut v = Validator::new();
        check_texts(&mut v, &value);
        let e = v.finish().unwrap_err();
        assert!(e.has("name") && e.has("members[0].notes"), "{e}");
        assert!(e.has("people"), "{e}");
        assert!(!e.to_string().contains("p\n1"), "{e}");
        assert!(!e.to_string().contains('王'), "{e}");
    }

    use proptest::prelude::*;

    proptest! {
        /// Any text at all: an answer, never a panic, and never the text in the message.
        #[test]
        fn parsers_never_panic_nor_repeat_their_input(s in "\\PC{0,40}", digits in "[0-9０-９中Xx]{14,20}") {
            for input in [&s, &digits] {
                // Inputs that could be a number's part (four digits or more).
                let t = input.trim();
                let numeric = t.chars().filter(char::is_ascii_digit).count() >= 4;
                if let Err(e) = parse_id_number(input, today()) {
                    prop_assert!(!numeric || !e.contains(t), "{e}");
                }
                if let Err(e) = check_phone(input) {
                    prop_assert!(!numeric || !e.contains(t), "{e}");
                }
                let _ = check_credit_code(input);
                let _ = check_line(input, 10);
                let _ = check_text(input, 10);
                let _ = check_id(input);
            }
        }

        /// Valid numbers made from random dates and digits are accepted.
        #[test]
        fn generated_id_numbers_pass(region in 110_000u32..=659_999, days in 0i64..40_000, seq in 0u32..1000) {
            let birth = chrono::NaiveDate::from_ymd_opt(1910, 1, 1).unwrap() + chrono::Duration::days(days);
            prop_assume!(Day(birth) <= today());
            let first17 = format!("{region:06}{}{seq:03}", birth.format("%Y%m%d"));
            let id = format!("{first17}{}", id_check_char(&first17).unwrap());
            let info = parse_id_number(&id, today()).unwrap();
            prop_assert_eq!(info.birth, Day(birth));
        }
    }
}
