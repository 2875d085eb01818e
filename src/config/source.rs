//! Reading one environment variable at a time. Each read names its variable
//! and default once, and is also recorded: `--help` is generated from the
//! record, and a test holds the README's table to it.

use std::cell::RefCell;
use std::ops::RangeInclusive;

use super::ConfigError;

/// One environment variable as `--help` and the README describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    pub name: &'static str,
    /// The id of the command-line flag that overrides it, if any.
    pub flag: Option<&'static str>,
    pub default: WhenUnset,
}

/// What an unset variable means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenUnset {
    /// Read as if this value were given.
    Value(String),
    /// No value stands in; this says what happens instead.
    Described(String),
}

impl std::fmt::Display for WhenUnset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(value) => f.write_str(value),
            Self::Described(text) => f.write_str(text),
        }
    }
}

/// Where settings come from: a lookup of variables, with at most one
/// command-line value on top (see [`Source::flag`]).
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    record: &'a RefCell<Vec<Documented>>,
    flag: Option<(&'static str, &'a Option<String>)>,
}

impl<'a> Source<'a> {
    pub(super) fn new(
        lookup: &'a dyn Fn(&str) -> Option<String>,
        record: &'a RefCell<Vec<Documented>>,
    ) -> Self {
        Self {
            lookup,
            record,
            flag: None,
        }
    }

    /// This source with the command-line flag `id` on top: its value, when
    /// given, wins over the variable read next.
    pub(super) fn flag(self, id: &'static str, value: &'a Option<String>) -> Self {
        Self {
            flag: Some((id, value)),
            ..self
        }
    }

    /// The value given, if any (blank counts as unset), recording `default`.
    fn raw(self, name: &'static str, default: WhenUnset) -> Option<String> {
        self.record.borrow_mut().push(Documented {
            name,
            flag: self.flag.map(|(id, _)| id),
            default,
        });
        self.flag
            .and_then(|(_, value)| value.clone())
            .or_else(|| (self.lookup)(name))
            .filter(|value| !value.trim().is_empty())
    }

    /// A variable without a default; `unset` says what its absence means.
    pub(super) fn optional<T>(
        self,
        name: &'static str,
        unset: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(name, WhenUnset::Described(unset.to_owned()))
            .map(|raw| {
                parse(&raw).map_err(|message| ConfigError {
                    variable: name,
                    message,
                })
            })
            .transpose()
    }

    /// A variable read as `default` when unset.
    pub(super) fn value<T>(
        self,
        name: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let raw = self
            .raw(name, WhenUnset::Value(default.to_owned()))
            .unwrap_or_else(|| default.to_owned());
        parse(&raw).map_err(|message| ConfigError {
            variable: name,
            message,
        })
    }

    /// A whole number within `range`.
    pub(super) fn number(
        self,
        name: &'static str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        self.value(name, &default.to_string(), |raw| whole_number(raw, &range))
    }

    /// A duration given as a whole number of `unit`s (seconds, days) within `range`.
    pub(super) fn duration(
        self,
        name: &'static str,
        default: i64,
        range: RangeInclusive<i64>,
        unit: fn(i64) -> chrono::Duration,
    ) -> Result<chrono::Duration, ConfigError> {
        self.number(name, default, range).map(unit)
    }
}

pub(super) fn whole_number(raw: &str, range: &RangeInclusive<i64>) -> Result<i64, String> {
    match raw.trim().parse::<i64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(format!(
            "{raw:?} is not a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// Comma-separated entries, blanks skipped, each parsed by `parse`.
pub(super) fn list<T>(
    raw: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(parse)
        .collect()
}
