//! The task ids the controller gives its tasks, and reading them back.
//!
//! A task id is `<spec id with '/' as '_'>.<instance>.g<generation>.<uuid>`, for example
//! `team-a_web.2.g1f2e3d4c.9b2fd1c0e6a54c1b8a7e0d2f3c4b5a69`:
//! - spec ids are segments of `[a-z0-9._-]` joined by `/`, so `_` never occurs in one and the spec
//!   part reads back unambiguously (`a/b` is `a_b`, `a.b` stays `a.b`);
//! - instance, generation and uuid contain no `.`, so the id splits from the right;
//! - the generation is the first 8 hex digits of the spec hash (the task's labels carry all of it),
//!   marked with a `g` so that it is never taken for an instance number;
//! - the uuid makes every launch unique.
//!
//! Mesos allows any characters in a task id but `/`, `\` and control characters, and at most 255 of
//! them; the controller's ids are plain ASCII.
//!
//! Ids written by earlier versions, `<spec id with '/' as '.'>.<instance>.<uuid>`, still read: the
//! instance and the uuid exactly, the spec only in its dotted form, which several spec ids can share
//! (`a/b` and `a.b` both give `a.b`); [`ParsedTaskId::names`] says whether a given spec id could
//! have produced it.

use crate::model::TaskId;
use crate::spec::SpecId;

/// How many hex digits of the generation a task id carries.
pub const ID_GENERATION_DIGITS: usize = 8;

/// The id of a new task of `instance` of `spec`, of `generation` (the spec hash).
pub fn task_id(spec: &SpecId, instance: u32, generation: &str) -> TaskId {
    let short: String = generation.chars().take(ID_GENERATION_DIGITS).collect();
    TaskId(format!(
        "{}.{}.g{}.{}",
        spec.as_str().replace('/', "_"),
        instance,
        short,
        uuid::Uuid::new_v4().simple()
    ))
}

/// What a task id says about its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTaskId {
    pub spec: SpecPart,
    pub instance: u32,
    /// The start of the generation (current ids only).
    pub generation_prefix: Option<String>,
}

/// The spec a task id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecPart {
    /// A current id: exactly this spec id.
    Exact(SpecId),
    /// An id of an earlier version: the spec id with every `/` written as `.`.
    Dotted(String),
}

impl ParsedTaskId {
    /// Whether the task id could have been given to a task of `spec`.
    pub fn names(&self, spec: &SpecId) -> bool {
        match &self.spec {
            SpecPart::Exact(id) => id == spec,
            SpecPart::Dotted(text) => spec.as_str().replace('/', ".") == *text,
        }
    }

    /// The spec id when the task id names exactly one.
    pub fn exact_spec(&self) -> Option<&SpecId> {
        match &self.spec {
            SpecPart::Exact(id) => Some(id),
            SpecPart::Dotted(_) => None,
        }
    }
}

/// Reads a task id of the controller (current or earlier form); `None` for any other id.
pub fn parse(id: &str) -> Option<ParsedTaskId> {
    parse_current(id).or_else(|| parse_earlier(id))
}

fn parse_current(id: &str) -> Option<ParsedTaskId> {
    let mut parts = id.rsplitn(4, '.');
    let uuid = parts.next()?;
    let generation = parts.next()?.strip_prefix('g')?;
    let instance = parts.next()?;
    let spec = parts.next()?;
    if !is_uuid(uuid) || generation.is_empty() || !is_hex(generation) {
        return None;
    }
    let instance = parse_instance(instance)?;
    let spec = SpecId::new(spec.replace('_', "/")).ok()?;
    Some(ParsedTaskId {
        spec: SpecPart::Exact(spec),
        instance,
        generation_prefix: Some(generation.to_owned()),
    })
}

fn parse_earlier(id: &str) -> Option<ParsedTaskId> {
    let mut parts = id.rsplitn(3, '.');
    let uuid = parts.next()?;
    let instance = parse_instance(parts.next()?)?;
    let spec = parts.next()?;
    // The dotted form of a valid spec id is itself a valid one-segment spec id.
    if !is_uuid(uuid) || SpecId::new(spec).is_err() || spec.contains('/') {
        return None;
    }
    Some(ParsedTaskId {
        spec: SpecPart::Dotted(spec.to_owned()),
        instance,
        generation_prefix: None,
    })
}

fn parse_instance(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_uuid(text: &str) -> bool {
    text.len() == 32 && is_hex(text)
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATION: &str = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";

    fn spec(id: &str) -> SpecId {
        SpecId::new(id).unwrap()
    }

    #[test]
    fn current_ids_read_back_exactly() {
        for id in ["web", "team-a/web", "a.b", "a/b", "a.b/c.d/e-f", "0"] {
            for instance in [0, 7, u32::MAX] {
                let task = task_id(&spec(id), instance, GENERATION);
                let parsed = parse(&task.0).unwrap_or_else(|| panic!("{task} parses"));
                assert_eq!(parsed.spec, SpecPart::Exact(spec(id)), "{task}");
                assert_eq!(parsed.instance, instance, "{task}");
                assert_eq!(parsed.generation_prefix.as_deref(), Some("1f2e3d4c"));
                assert!(parsed.names(&spec(id)));
            }
        }
    }

    #[test]
    fn ids_of_specs_that_differ_only_by_slash_and_dot_differ() {
        let slash = parse(&task_id(&spec("a/b"), 0, GENERATION).0).unwrap();
        let dot = parse(&task_id(&spec("a.b"), 0, GENERATION).0).unwrap();
        assert!(slash.names(&spec("a/b")) && !slash.names(&spec("a.b")));
        assert!(dot.names(&spec("a.b")) && !dot.names(&spec("a/b")));
    }

    #[test]
    fn current_ids_are_readable_and_valid_for_mesos() {
        let task = task_id(&spec("team-a/web"), 2, GENERATION);
        assert!(task.0.starts_with("team-a_web.2.g1f2e3d4c."), "{task}");
        assert!(!task.0.contains('/') && !task.0.contains('\\'));
        assert!(task.0.is_ascii());
    }

    #[test]
    fn earlier_ids_still_read() {
        let parsed = parse("team-a.web.3.0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(parsed.spec, SpecPart::Dotted("team-a.web".to_owned()));
        assert_eq!(parsed.instance, 3);
        assert_eq!(parsed.generation_prefix, None);
        assert!(parsed.names(&spec("team-a/web")));
        assert!(parsed.names(&spec("team-a.web")));
        assert!(!parsed.names(&spec("team-a/web2")));
        assert_eq!(parsed.exact_spec(), None);
    }

    #[test]
    fn other_ids_are_not_read() {
        for id in [
            "",
            "web",
            "s1",
            "web.0",
            "web.x.0123456789abcdef0123456789abcdef",
            "web.0.0123",
            ".0.0123456789abcdef0123456789abcdef",
            "Web.0.0123456789abcdef0123456789abcdef",
            "web.0.g.0123456789abcdef0123456789abcdef",
            "web.0.gxyz.0123456789abcdef0123456789abcdef",
            "we b.0.g12345678.0123456789abcdef0123456789abcdef",
            "web.-1.g12345678.0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse(id), None, "{id:?}");
        }
    }
}
