//! The query parameters of `GET /api/v1/status` and `GET /`: filters (`spec`, `state`), paging
//! (`limit`, `after`) and `order`. Parsed from the raw query string (percent-decoding by the
//! `percent-encoding` crate), so that every mistake gets a 400 that says what is accepted.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::index::{PROBLEM_BITS, ROLLOUT_BITS, SpecState, TASK_STATES, task_state_bit};

/// The page size of `GET /api/v1/status` when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 500;

/// The page size of the HTML page when `limit` is not given.
pub const PAGE_DEFAULT_LIMIT: usize = 100;

/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;

/// The parameters, in the order error messages list them.
const PARAMETERS: [&str; 5] = ["spec", "state", "limit", "after", "order"];

/// What a request asks for. Built by [`Query::parse`]; a `Query::new` with defaults also serves
/// callers that want everything in pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub spec: Option<SpecFilter>,
    pub state: Option<StateFilter>,
    /// Spec ids per page, 0 to [`MAX_LIMIT`]. 0 asks for the summary alone.
    pub limit: usize,
    /// Start after this cursor (the `next` of the previous page).
    pub after: Option<Cursor>,
    pub order: Order,
}

/// The order of the spec ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By id (byte order): the API's default.
    Id,
    /// Worst state first ([`SpecState`] order), then by id: the page's default.
    Problems,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Id => "id",
            Order::Problems => "problems",
        }
    }
}

/// Where a page starts: after this spec id (`id` order), or after this state and id (`problems`
/// order, written `<state>:<id>`, e.g. `healthy:team-a/web`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Id(String),
    Problems(SpecState, String),
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Id(id) => f.write_str(id),
            Cursor::Problems(state, id) => write!(f, "{}:{id}", state.name()),
        }
    }
}

/// `spec=`: which spec ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecFilter {
    /// `spec=team-a/web`: that id.
    Exact(String),
    /// `spec=team-a/`: every id under the directory `team-a/` (any depth).
    Prefix(String),
    /// `spec=*web*`: ids the pattern matches as a whole, `*` matching any run of characters
    /// (slashes included). Spec ids cannot contain `*`.
    Glob(Glob),
}

impl SpecFilter {
    /// The filter as written.
    pub fn text(&self) -> &str {
        match self {
            SpecFilter::Exact(text) | SpecFilter::Prefix(text) => text,
            SpecFilter::Glob(glob) => &glob.pattern,
        }
    }

    pub fn matches(&self, id: &str) -> bool {
        match self {
            SpecFilter::Exact(exact) => id == exact,
            SpecFilter::Prefix(prefix) => id.starts_with(prefix.as_str()),
            SpecFilter::Glob(glob) => glob.matches(id),
        }
    }
}

/// A pattern where `*` matches any run of characters and everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    /// The text between the stars (one more than there are stars).
    pieces: Vec<String>,
}

impl Glob {
    pub fn new(pattern: impl Into<String>) -> Glob {
        let pattern = pattern.into();
        let pieces = pattern.split('*').map(str::to_owned).collect();
        Glob { pattern, pieces }
    }

    /// The text before the first `*`: every match starts with it.
    pub fn literal_prefix(&self) -> &str {
        self.pieces.first().map_or("", String::as_str)
    }

    /// Whether the pattern matches all of `text`. The pieces between stars are found left to
    /// right, each at its first place after the previous one (a later place never leaves more
    /// room for the rest), so there is no backtracking. Spec ids are short, so the plain search
    /// below beats a searcher that must be set up for every id.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some(mut text) = text.strip_prefix(first.as_bytes()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No star: the whole text must be the first piece.
            return text.is_empty();
        };
        for piece in middle {
            let piece = piece.as_bytes();
            match find(text, piece) {
                Some(at) => text = &text[at + piece.len()..],
                None => return false,
            }
        }
        text.ends_with(last.as_bytes())
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `state=`: spec ids in any of the named states (comma-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFilter {
    /// The words as given, normalised (`invalid`, `TASK_RUNNING`).
    words: Vec<String>,
    mask: u32,
}

impl StateFilter {
    /// Parses `given_up,TASK_STAGING`. Spec states are lower case, task states upper case; both
    /// are accepted in any case.
    pub fn parse(text: &str) -> Result<Option<StateFilter>, QueryError> {
        let mut filter = StateFilter {
            words: Vec::new(),
            mask: 0,
        };
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            let upper = word.to_ascii_uppercase();
            let (bits, normal) = if let Some(state) = SpecState::from_name(&lower) {
                (state.bit(), lower)
            } else if let Some(i) = TASK_STATES.iter().position(|s| *s == upper) {
                (task_state_bit(i), upper)
            } else {
                let bits = match lower.as_str() {
                    "error" => SpecState::Invalid.bit(),
                    "failing" => SpecState::Backoff.bit(),
                    "problem" => PROBLEM_BITS,
                    "rollout" => ROLLOUT_BITS,
                    _ => {
                        return Err(QueryError(format!(
                            "unknown state `{word}`; the states are: {}",
                            state_vocabulary()
                        )));
                    }
                };
                (bits, lower)
            };
            filter.mask |= bits;
            if !filter.words.contains(&normal) {
                filter.words.push(normal);
            }
        }
        Ok((filter.mask != 0).then_some(filter))
    }

    /// The filter bits (see `super::index`).
    pub(crate) fn mask(&self) -> u32 {
        self.mask
    }

    /// The words, comma-separated, as a link writes them.
    pub fn text(&self) -> String {
        self.words.join(",")
    }
}

/// Every word `state=` accepts, for error messages and the documentation.
pub fn state_vocabulary() -> String {
    let mut words: Vec<String> = SpecState::ALL
        .iter()
        .map(|state| state.name().to_owned())
        .collect();
    words.push("problem (any of invalid .. deleted)".to_owned());
    words.push("rollout (rolling_out or rollout_stopped)".to_owned());
    words.push("error (= invalid)".to_owned());
    words.push("failing (= backoff)".to_owned());
    words.push(format!("or a task state ({})", TASK_STATES.join(", ")));
    words.join(", ")
}

/// A request the server refuses with 400; the text says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

impl Query {
    /// No filter, the first page of `limit` in `order`.
    pub fn new(limit: usize, order: Order) -> Query {
        Query {
            spec: None,
            state: None,
            limit,
            after: None,
            order,
        }
    }

    /// Parses a raw query string (`spec=team-a/&state=pending&limit=50`). An empty value is the
    /// same as no value (an HTML form sends its empty fields). Unknown parameters, parameters
    /// given twice, and bad values are errors.
    pub fn parse(
        raw: Option<&str>,
        default_limit: usize,
        default_order: Order,
    ) -> Result<Query, QueryError> {
        let mut values: [Option<String>; PARAMETERS.len()] = Default::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            let Some(slot) = PARAMETERS.iter().position(|p| *p == key) else {
                return Err(QueryError(format!(
                    "unknown parameter `{key}`; the parameters are {}",
                    PARAMETERS.join(", ")
                )));
            };
            if value.is_empty() {
                continue;
            }
            if values[slot].replace(value).is_some() {
                return Err(QueryError(format!("`{key}` is given twice")));
            }
        }
        let [spec, state, limit, after, order] = values;

        let order = match order.as_deref() {
            None => default_order,
            Some("id") => Order::Id,
            Some("problems") => Order::Problems,
            Some(other) => {
                return Err(QueryError(format!(
                    "unknown order `{other}`; the orders are id and problems"
                )));
            }
        };
        let limit = match limit {
            None => default_limit,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n <= MAX_LIMIT && text.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(QueryError(format!(
                        "limit must be a whole number from 0 to {MAX_LIMIT}, not `{text}`"
                    )));
                }
            },
        };
        let after = match (after, order) {
            (None, _) => None,
            (Some(id), Order::Id) => Some(Cursor::Id(id)),
            (Some(text), Order::Problems) => {
                let cursor = text.split_once(':').and_then(|(state, id)| {
                    SpecState::from_name(state).map(|state| Cursor::Problems(state, id.to_owned()))
                });
                Some(cursor.ok_or_else(|| {
                    QueryError(format!(
                        "in problems order, after takes the `next` of the previous page, \
                         `<state>:<id>` (e.g. `healthy:team-a/web`), not `{text}`"
                    ))
                })?)
            }
        };
        let spec = spec.map(|text| {
            if text.contains('*') {
                SpecFilter::Glob(Glob::new(text))
            } else if text.ends_with('/') {
                SpecFilter::Prefix(text)
            } else {
                SpecFilter::Exact(text)
            }
        });
        let state = match state {
            None => None,
            Some(text) => StateFilter::parse(&text)?,
        };
        Ok(Query {
            spec,
            state,
            limit,
            after,
            order,
        })
    }

    /// The query string of this query's page starting after `after` (None: the first page), for
    /// links: parameters equal to the defaults are left out.
    pub fn link(&self, after: Option<&str>, default_limit: usize, default_order: Order) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(spec) = &self.spec {
            pairs.push(("spec", spec.text().to_owned()));
        }
        if let Some(state) = &self.state {
            pairs.push(("state", state.text()));
        }
        if self.limit != default_limit {
            pairs.push(("limit", self.limit.to_string()));
        }
        if self.order != default_order {
            pairs.push(("order", self.order.name().to_owned()));
        }
        if let Some(after) = after {
            pairs.push(("after", after.to_owned()));
        }
        let pairs: Vec<String> = pairs
            .into_iter()
            .map(|(key, value)| format!("{key}={}", encode(&value)))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// What [`encode`] leaves as written besides letters and digits: the characters of spec ids,
/// patterns and cursors (`team-a/web`, `*web*`, `invalid:team-a/web`), so links stay readable.
const LEFT_AS_WRITTEN: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b':')
    .remove(b',')
    .remove(b'*');

/// Percent-encodes a query value: everything but letters, digits and `-._~/:,*` is escaped.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, LEFT_AS_WRITTEN).to_string()
}

/// Decodes a query key or value as forms write them: `+` is a space, `%XX` a byte. Stricter than
/// the crate, on purpose: a `%` without two hex digits after it, or bytes that are not UTF-8, get
/// a 400 rather than a guess (no page or well-behaved client writes them).
fn decode(text: &str) -> Result<String, QueryError> {
    let hex_follows = |rest: &str| rest.bytes().take(2).filter(u8::is_ascii_hexdigit).count() == 2;
    if !text.split('%').skip(1).all(hex_follows) {
        return Err(QueryError(format!(
            "bad percent-escape in the query: `{text}`"
        )));
    }
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| QueryError(format!("the query is not UTF-8: `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Query, QueryError> {
        Query::parse(Some(raw), DEFAULT_LIMIT, Order::Id)
    }

    #[test]
    fn defaults_and_empty_values() {
        let query = Query::parse(None, DEFAULT_LIMIT, Order::Id).unwrap();
        assert_eq!(query, Query::new(DEFAULT_LIMIT, Order::Id));
        // An HTML form sends every field, empty or not.
        let form = parse("spec=&state=&limit=&after=&order=").unwrap();
        assert_eq!(form, Query::new(DEFAULT_LIMIT, Order::Id));
        let page = Query::parse(Some(""), PAGE_DEFAULT_LIMIT, Order::Problems).unwrap();
        assert_eq!(page, Query::new(PAGE_DEFAULT_LIMIT, Order::Problems));
    }

    #[test]
    fn spec_filters_exact_prefix_and_glob() {
        let exact = parse("spec=team-a%2Fweb").unwrap().spec.unwrap();
        assert_eq!(exact, SpecFilter::Exact("team-a/web".to_owned()));
        assert!(exact.matches("team-a/web") && !exact.matches("team-a/web2"));

        let prefix = parse("spec=team-a/").unwrap().spec.unwrap();
        assert!(prefix.matches("team-a/web") && prefix.matches("team-a/x/y"));
        assert!(!prefix.matches("team-ab/web") && !prefix.matches("team-a"));

        let glob = parse("spec=*web*").unwrap().spec.unwrap();
        assert!(glob.matches("team-a/web") && glob.matches("web") && glob.matches("a/webx"));
        assert!(!glob.matches("team-a/api"));
    }

    #[test]
    fn globs_match_the_whole_id() {
        let cases = [
            ("team-*/web", "team-a/web", true),
            ("team-*/web", "team-a/web2", false),
            ("*", "", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("*aa", "aaa", true),
            ("a*a", "a", false),
            ("ab", "ab", true),
            ("ab", "abc", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern} vs {text}"
            );
        }
        assert_eq!(Glob::new("team-*/web").literal_prefix(), "team-");
    }

    #[test]
    fn states_words_aliases_and_task_states() {
        let filter = parse("state=given_up,TASK_staging, pending")
            .unwrap()
            .state
            .unwrap();
        assert_eq!(filter.text(), "given_up,TASK_STAGING,pending");
        assert_eq!(
            filter.mask(),
            SpecState::GivenUp.bit() | SpecState::Pending.bit() | task_state_bit(0)
        );
        let error = parse("state=error").unwrap().state.unwrap();
        assert_eq!(error.mask(), SpecState::Invalid.bit());
        let err = parse("state=running").unwrap_err().to_string();
        assert!(err.contains("unknown state `running`"), "{err}");
        assert!(
            err.contains("healthy") && err.contains("TASK_RUNNING"),
            "{err}"
        );
    }

    #[test]
    fn limits_and_bad_values() {
        assert_eq!(parse("limit=0").unwrap().limit, 0);
        assert_eq!(parse("limit=10000").unwrap().limit, MAX_LIMIT);
        for bad in [
            "limit=10001",
            "limit=-1",
            "limit=x",
            "limit=+5",
            "limit=1e3",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("from 0 to 10000"), "{bad}: {err}");
        }
        let err = parse("limt=5").unwrap_err().to_string();
        assert!(err.contains("unknown parameter `limt`"), "{err}");
        let err = parse("spec=a&spec=b").unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let err = parse("order=random").unwrap_err().to_string();
        assert!(err.contains("id and problems"), "{err}");
        assert!(parse("spec=%zz").is_err());
        assert!(parse("spec=%ff").is_err(), "not UTF-8");
        assert!(parse("spec=ab%2").is_err());
        assert!(parse("spec=%").is_err());
    }

    #[test]
    fn encode_keeps_ids_readable_and_round_trips() {
        assert_eq!(encode("team-a/web_1.x~"), "team-a/web_1.x~");
        assert_eq!(encode("invalid:*web*,b"), "invalid:*web*,b");
        for value in ["a b&c=d+e%f#g?h", "zürich/ünïcode", "", "%2F"] {
            assert_eq!(decode(&encode(value)).unwrap(), value, "{value:?}");
        }
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(decode("a+b%2Bc").unwrap(), "a b+c");
    }

    #[test]
    fn cursors_follow_the_order() {
        assert_eq!(
            parse("after=team-a/web").unwrap().after,
            Some(Cursor::Id("team-a/web".to_owned()))
        );
        let problems = parse("order=problems&after=healthy:team-a/web").unwrap();
        assert_eq!(
            problems.after,
            Some(Cursor::Problems(
                SpecState::Healthy,
                "team-a/web".to_owned()
            ))
        );
        let err = parse("order=problems&after=team-a/web")
            .unwrap_err()
            .to_string();
        assert!(err.contains("<state>:<id>"), "{err}");
    }

    #[test]
    fn links_round_trip_through_parse() {
        let query =
            parse("spec=we%20ird%26/&state=invalid,TASK_RUNNING&limit=7&order=problems").unwrap();
        let link = query.link(Some("healthy:we ird&/x"), DEFAULT_LIMIT, Order::Id);
        let again = parse(link.trim_start_matches('?')).unwrap();
        assert_eq!(again.spec, query.spec);
        assert_eq!(again.state, query.state);
        assert_eq!(again.limit, 7);
        assert_eq!(again.order, Order::Problems);
        assert_eq!(
            again.after,
            Some(Cursor::Problems(SpecState::Healthy, "we ird&/x".to_owned()))
        );
        assert_eq!(
            Query::new(DEFAULT_LIMIT, Order::Id).link(None, DEFAULT_LIMIT, Order::Id),
            ""
        );
    }
}
