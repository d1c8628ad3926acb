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
/// The messages never repeat the number itself (it is sensitive).
pub fn parse_id_number(id: &str, today: Day) -> Result<IdNumberInfo, String> {
    let id = id.trim();
    if id.len() == 15 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is a 15-digit first-generation number; enter the 18-digit number".into());
    }
    if id.chars().count() != 18 {
        return Err(format!(
            "must have 18 characters, has {}",
            id.chars().count()
        ));
    }
    let (first17, last) = id.split_at(17);
    if !first17.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the first 17 characters must be digits".into());
    }
    let region: u32 = first17[0..6]
        .parse()
        .map_err(|_| "bad region code".to_string())?;
    if !(110_000..=829_999).contains(&region) {
        return Err(format!(
            "region code {:06} is not a Chinese administrative region",
            region
        ));
    }
    let (y, m, d) = (&first17[6..10], &first17[10..12], &first17[12..14]);
    let birth = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => Day::ymd(y, m, d),
        _ => None,
    }
    .ok_or_else(|| format!("birth date part {y}-{m}-{d} is not a real date"))?;
    if birth.0.year() < 1890 || birth > today {
        return Err(format!("birth date part {birth} is out of range"));
    }
    let expected = id_check_char(first17).ok_or_else(|| "bad digits".to_string())?;
    let got = last
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or(' ');
    if got != expected {
        return Err(format!(
            "check digit is {got}, the first 17 digits give {expected}"
        ));
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
        return Err(format!(
            "check character is {got}, the first 17 give {expected}"
        ));
    }
    Ok(())
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
        assert_eq!(
            info.unwrap_err(),
            "check digit is 5, the first 17 digits give 1"
        );
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
        assert!(
            e("11010530001231002X").contains("out of range")
                || e("11010530001231002X").contains("check")
        );
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
}
