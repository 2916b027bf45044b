//! `SpecError`: one problem in one spec file, with the file, 1-based line and column, the dotted
//! field it concerns and, where the fix is obvious, a hint. Also the translation of `toml` errors
//! (byte spans, serde wording) into that form, including "did you mean" for misspelt keys.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

/// One problem in one spec file. Displayed as
/// `desired/web.toml:7:10: backoff.factor: must be at least 1.0 (got 0.5)`, followed by
/// ` (hint: ...)` when there is a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecError {
    /// The file as the user named it (e.g. `desired/team-a/web.toml`).
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file (unreadable, invalid name).
    pub line: usize,
    /// 1-based column in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted path of the offending key (`backoff.factor`, `constraints[1].op`); empty when the
    /// problem is not about one key (a TOML syntax error, an unreadable file).
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
    /// How to fix it, when that is obvious (`did you mean `instances`?`).
    pub hint: Option<String>,
}

impl SpecError {
    /// An error at a byte span of `text`, located by the span's start.
    pub fn at(file: &str, text: &str, span: Range<usize>, field: &str, message: String) -> Self {
        let (line, column) = line_column(text, span.start);
        SpecError {
            file: file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message,
            hint: None,
        }
    }

    /// An error about the file as a whole (unreadable, badly named), with no position.
    pub fn whole_file(file: &str, message: String) -> Self {
        SpecError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
            hint: None,
        }
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same error with an optional hint.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        write!(f, " {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// 1-based line and column (in characters) of byte `offset` in `text`. Offsets past the end or inside
/// a multi-byte character are clamped to the nearest preceding character boundary.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Turns a `toml` error (syntax, or serde's type / unknown-key / missing-key errors) into a
/// `SpecError` that names the dotted field and, for a misspelt key, suggests the closest known one.
pub fn from_toml(file: &str, text: &str, err: &toml::de::Error) -> SpecError {
    let span = err.span().unwrap_or(0..0);
    let raw = err.message().trim_end();
    // Serde errors come from a document that parsed, so the path of the span can be looked up in a
    // span-preserving parse. Syntax errors have no meaningful path.
    let path = DeTable::parse(text)
        .ok()
        .and_then(|table| path_at(table.get_ref(), span.start, ""))
        .unwrap_or_default();
    let ticked = backticked(raw);

    if let Some(unknown) = raw.strip_prefix("unknown field ").and(ticked.first()) {
        let candidates = &ticked[1..];
        let hint = match closest(unknown, candidates) {
            Some(best) => format!("did you mean `{best}`?"),
            None if candidates.is_empty() => "this table takes no keys".to_owned(),
            None => format!("known keys here: {}", candidates.join(", ")),
        };
        return SpecError::at(file, text, span, &path, format!("unknown key `{unknown}`"))
            .with_hint(hint);
    }
    if let Some(missing) = raw.strip_prefix("missing field ").and(ticked.first()) {
        let field = join_path(&path, missing);
        return SpecError::at(file, text, span, &field, format!("missing key `{missing}`"));
    }
    if raw.starts_with("invalid type") || raw.starts_with("invalid value") {
        let message = plain_type_words(raw);
        let hint = type_hint(&path, raw);
        return SpecError::at(file, text, span, &path, message).with_hint_opt(hint);
    }
    let message = lowercase_first(raw);
    SpecError::at(file, text, span, &path, message)
}

/// Serde names Rust types ("expected i64"); users wrote TOML.
fn plain_type_words(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("floating point", "float"),
    ] {
        out = out.replace(rust, toml);
    }
    // Nested sections are `struct RawBackoff` and the like to serde.
    if let Some(at) = out.find("expected struct ") {
        out.replace_range(at.., "expected a table");
    }
    out
}

/// A hint for the common type slips: an unquoted duration, a quoted number.
fn type_hint(path: &str, message: &str) -> Option<String> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let duration_keys = [
        "kill_grace",
        "unreachable_after",
        "initial",
        "max",
        "reset_after",
        "interval",
        "timeout",
        "grace",
        "deadline",
    ];
    if duration_keys.contains(&key) && message.ends_with("expected a string") {
        return Some("durations are strings with a unit, e.g. \"10s\" or \"1m30s\"".to_owned());
    }
    if message.starts_with("invalid type: string") && !message.ends_with("expected a string") {
        return Some("write numbers and booleans without quotes".to_owned());
    }
    if path.starts_with("env.") && message.ends_with("expected a string") {
        return Some("environment values are strings; quote it".to_owned());
    }
    None
}

/// The dotted path (`health.http.port_index`, `constraints[1].op`) of the deepest key or value whose
/// span contains byte `pos`.
fn path_at(table: &DeTable<'_>, pos: usize, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let path = join_path(prefix, key.get_ref());
        if let Some(found) = path_in_value(value, pos, &path) {
            return Some(found);
        }
        if contains(key.span(), pos) {
            return Some(path);
        }
    }
    None
}

fn path_in_value(value: &toml::Spanned<DeValue<'_>>, pos: usize, path: &str) -> Option<String> {
    // Children first: the deepest match names the most precise field. Tables written with a
    // `[header]` have the header as their span, so their children are searched regardless of it.
    match value.get_ref() {
        DeValue::Table(table) => {
            if let Some(found) = path_at(table, pos, path) {
                return Some(found);
            }
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(found) = path_in_value(item, pos, &format!("{path}[{i}]")) {
                    return Some(found);
                }
            }
        }
        _ => {}
    }
    contains(value.span(), pos).then(|| path.to_owned())
}

fn contains(span: Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || (span.is_empty() && span.start == pos)
}

/// `prefix.key`, or `key` at the top level.
pub fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The words between backticks, in order: serde quotes the offending key first, then the expected
/// ones.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The candidate closest to `word` if it is close enough to be a likely typo: a few edits for long
/// words, one for short ones, ignoring case and `-`/`_` confusion. Edits are counted by optimal
/// string alignment (Levenshtein plus adjacent transpositions, so `instnaces` is one edit from
/// `instances`).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let normalise = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let word = normalise(word);
    let allowed = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|candidate| {
            (
                strsim::osa_distance(&word, &normalise(candidate)),
                *candidate,
            )
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_is_one_based_and_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` after the two-byte `é` is the 4th character of line 2.
        let eq = text.rfind('=').unwrap();
        assert_eq!(line_column(text, eq), (2, 4));
        // Inside the multi-byte character, and past the end: clamped, never a panic.
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn closest_finds_likely_typos() {
        let keys = ["instances", "command", "cpus", "mem", "kill_grace"];
        assert_eq!(closest("instnaces", &keys), Some("instances"));
        // A transposition is one edit: `kill_garce` (10 letters) is within the 3 allowed.
        assert_eq!(closest("kill_garce", &keys), Some("kill_grace"));
        assert_eq!(closest("isntnaces", &keys), Some("instances"));
        assert_eq!(closest("Command", &keys), Some("command"));
        assert_eq!(closest("cpu", &keys), Some("cpus"));
        assert_eq!(closest("kill-grace", &keys), Some("kill_grace"));
        assert_eq!(closest("memory", &keys), None);
        assert_eq!(closest("zzz", &keys), None);
    }

    #[test]
    fn display_with_and_without_position_and_hint() {
        let text = "a = 1\n[backoff]\nfactor = 0.5\n";
        let span = text.find("0.5").unwrap()..text.len() - 1;
        let err = SpecError::at(
            "desired/web.toml",
            text,
            span,
            "backoff.factor",
            "must be at least 1.0 (got 0.5)".into(),
        );
        assert_eq!(
            err.to_string(),
            "desired/web.toml:3:10: backoff.factor: must be at least 1.0 (got 0.5)"
        );
        let err = SpecError::whole_file("desired/x.toml", "cannot read: denied".into())
            .with_hint("check permissions");
        assert_eq!(
            err.to_string(),
            "desired/x.toml: cannot read: denied (hint: check permissions)"
        );
    }
}
