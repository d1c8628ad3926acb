//! Small value types shared by every record: calendar days, instants, exact areas, and the
//! `str_enum!` macro that gives a closed set of codes the same spelling in Automerge, JSON and
//! the command line, with Chinese and English labels.

use std::fmt;

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler, reconcile::NoKey};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a string-coded enum: stored in Automerge and JSON as its stable English `code`,
/// shown as its Chinese (`zh`) or English (`en`) label, and parsed from any of the three.
#[macro_export]
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = ($code:literal, $zh:literal, $en:literal) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        // The front end's type: a union of the codes (`"male" | "female"`), described by a
        // mirror of the enum whose variants are renamed to their codes.
        const _: () = {
            mod specta_shape {
                $(#[$meta])*
                #[derive(::serde::Serialize, ::specta::Type)]
                #[specta(remote = super::$name)]
                #[allow(dead_code)]
                pub enum $name { $( #[serde(rename = $code)] $variant ),+ }
            }
        };

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stable code stored in documents and JSON.
            pub fn code(self) -> &'static str { match self { $($name::$variant => $code),+ } }
            /// The Simplified Chinese label.
            pub fn zh(self) -> &'static str { match self { $($name::$variant => $zh),+ } }
            /// The English label.
            pub fn en(self) -> &'static str { match self { $($name::$variant => $en),+ } }
            /// Parses a code, a Chinese label or an English label (case-insensitive for ASCII).
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| {
                    v.code() == s || v.zh() == s || v.en().eq_ignore_ascii_case(s)
                })
            }
            /// The accepted codes, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| format!("{} ({})", v.code(), v.zh())).collect::<Vec<_>>().join(", ")
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.code()) }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.code()) }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| ::serde::de::Error::custom(
                    // The value itself is not repeated: it may be a phone typed into the wrong column.
                    format!("is not one of: {}", Self::expected())))
            }
        }
        impl ::autosurgeon::Reconcile for $name {
            type Key<'a> = ::autosurgeon::reconcile::NoKey;
            fn reconcile<R: ::autosurgeon::Reconciler>(&self, mut r: R) -> Result<(), R::Error> { r.str(self.code()) }
        }
        impl ::autosurgeon::Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, ::autosurgeon::HydrateError> {
                Self::parse(s).ok_or_else(|| ::autosurgeon::HydrateError::unexpected(
                    concat!("a ", stringify!($name), " code"), s.to_string()))
            }
        }
    };
}

/// A calendar day (birth dates, due dates, move-in dates), stored as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, specta::Type)]
#[specta(type = String)]
pub struct Day(pub NaiveDate);

impl Day {
    /// Builds a day, `None` when the date does not exist.
    pub fn ymd(y: i32, m: u32, d: u32) -> Option<Day> {
        NaiveDate::from_ymd_opt(y, m, d).map(Day)
    }
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Day, String> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(Day)
            .map_err(|_| "is not a date of the form YYYY-MM-DD".to_string())
    }
    /// The first instant after this day ends in China Standard Time, in ms since the epoch
    /// (a task due on a day is late from this instant on).
    pub fn end_ms(self) -> i64 {
        let next = self.0.succ_opt().unwrap_or(NaiveDate::MAX);
        next.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(china_offset()).single())
            .map_or(i64::MAX, |t| t.timestamp_millis())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Day::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Reconcile for Day {
    type Key<'a> = NoKey;
    fn reconcile<R: Reconciler>(&self, mut r: R) -> Result<(), R::Error> {
        r.str(self.to_string())
    }
}

impl Hydrate for Day {
    fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
        Day::parse(s).map_err(|_| HydrateError::unexpected("a YYYY-MM-DD date", s.to_string()))
    }
}

/// China Standard Time (UTC+8), the offset in which Linli shows and parses instants.
pub fn china_offset() -> FixedOffset {
    // Checked when compiling: 8 h is within the ±24 h chrono accepts.
    const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
        Some(offset) => offset,
        None => panic!("UTC+8 is a valid offset"),
    };
    CHINA
}

/// An instant, stored as milliseconds since the Unix epoch (an Automerge timestamp), shown in
/// China Standard Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current instant.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
    /// The instant as a date-time in China Standard Time.
    pub fn to_china(self) -> DateTime<FixedOffset> {
        let utc = Utc
            .timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_else(|| DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default());
        utc.with_timezone(&china_offset())
    }
    /// The calendar day in China Standard Time.
    pub fn day(self) -> Day {
        Day(self.to_china().date_naive())
    }
    /// Parses RFC 3339 (`2026-03-05T09:30:00+08:00`), `YYYY-MM-DD HH:MM` (China time) or a
    /// bare date (midnight, China time).
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(t.timestamp_millis()));
        }
        let tz = china_offset();
        for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
            if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, fmt)
                && let Some(t) = tz.from_local_datetime(&naive).single()
            {
                return Ok(Timestamp(t.timestamp_millis()));
            }
        }
        if let Ok(day) = Day::parse(s)
            && let Some(t) = day
                .0
                .and_hms_opt(0, 0, 0)
                .and_then(|n| tz.from_local_datetime(&n).single())
        {
            return Ok(Timestamp(t.timestamp_millis()));
        }
        Err("is not a time (expected RFC 3339 or YYYY-MM-DD HH:MM)".to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_china().format("%Y-%m-%d %H:%M"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(
            &self
                .to_china()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        )
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Reconcile for Timestamp {
    type Key<'a> = NoKey;
    fn reconcile<R: Reconciler>(&self, mut r: R) -> Result<(), R::Error> {
        r.timestamp(self.0)
    }
}

impl Hydrate for Timestamp {
    fn hydrate_timestamp(t: i64) -> Result<Self, HydrateError> {
        Ok(Timestamp(t))
    }
    fn hydrate_int(t: i64) -> Result<Self, HydrateError> {
        Ok(Timestamp(t))
    }
}

/// A floor area in hundredths of a square metre (0.01 m²), exact so that ballot tallies can be
/// computed with integers. JSON carries it as a decimal number of square metres (`87.35`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, specta::Type)]
#[specta(type = f64)]
pub struct Area(pub u64);

impl Area {
    /// Converts square metres, rounding to the nearest 0.01 m²; `None` for negative, infinite
    /// or absurd (> 100,000 m²) values.
    pub fn from_m2(m2: f64) -> Option<Area> {
        if !m2.is_finite() || !(0.0..=100_000.0).contains(&m2) {
            return None;
        }
        Some(Area((m2 * 100.0).round() as u64))
    }
    /// The area in square metres (for display only: never compute tallies with it).
    pub fn m2(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Area {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.m2())
    }
}

impl<'de> Deserialize<'de> for Area {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Area::from_m2(v)
            .ok_or_else(|| serde::de::Error::custom("is not a floor area in m² (0 to 100000)"))
    }
}

impl Reconcile for Area {
    type Key<'a> = NoKey;
    fn reconcile<R: Reconciler>(&self, mut r: R) -> Result<(), R::Error> {
        r.u64(self.0)
    }
}

impl Hydrate for Area {
    fn hydrate_uint(u: u64) -> Result<Self, HydrateError> {
        Ok(Area(u))
    }
    fn hydrate_int(i: i64) -> Result<Self, HydrateError> {
        u64::try_from(i)
            .map(Area)
            .map_err(|_| HydrateError::unexpected("a non-negative area", i.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_is_exact_in_hundredths() {
        assert_eq!(Area::from_m2(87.35), Some(Area(8735)));
        assert_eq!(Area(8735).to_string(), "87.35");
        assert_eq!(Area(8705).to_string(), "87.05");
        assert_eq!(Area::from_m2(-1.0), None);
        assert_eq!(Area::from_m2(f64::NAN), None);
    }

    #[test]
    fn timestamps_parse_in_china_time() {
        let t = Timestamp::parse("2026-03-05 09:30").unwrap();
        assert_eq!(t, Timestamp::parse("2026-03-05T01:30:00Z").unwrap());
        assert_eq!(t.to_string(), "2026-03-05 09:30");
        assert_eq!(t.day(), Day::ymd(2026, 3, 5).unwrap());
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn days_reject_impossible_dates() {
        assert!(Day::parse("2026-02-29").is_err());
        assert!(Day::parse("2024-02-29").is_ok());
    }

    #[test]
    fn a_day_ends_at_midnight_china_time() {
        let day = Day::ymd(2026, 3, 5).unwrap();
        assert_eq!(
            day.end_ms(),
            Timestamp::parse("2026-03-06 00:00").unwrap().0
        );
        assert_eq!(Timestamp(day.end_ms() - 1).day(), day);
    }
}
