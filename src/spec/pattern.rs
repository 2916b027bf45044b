//! The regular expressions of `like` / `unlike` placement constraints, compiled by the `regex`
//! crate: its syntax is the one Rust users know, its matching is linear in the input (no
//! backtracking, so a hostile pattern cannot stall a pass), and its errors carry positions.
//!
//! What this module adds to the crate is the spec's contract:
//! - **Whole-value matching**, as Marathon's LIKE/UNLIKE do: the pattern is compiled as
//!   `^(?:pattern)$`, so `rack-[12]` matches `rack-1`, not `rack-10`.
//! - **Bounded size**: a pattern whose compiled program would pass [`SIZE_LIMIT`] bytes, or whose
//!   lazy DFA would pass [`DFA_SIZE_LIMIT`], is rejected when the spec is validated (an invalid
//!   spec, with a hint), so no spec file can make the controller build a huge program. Counted
//!   repetitions of Unicode classes are what reach it (`\w{1,20}` compiles to about a megabyte).
//! - **Messages for people**: one line, the position as a character index in the pattern as
//!   written (not in the anchored form), for the validator to put after the file, line and column.

use regex::{Regex, RegexBuilder};

/// The most a compiled pattern may take (`RegexBuilder::size_limit`): generous for any pattern
/// over hostnames and attribute values (`\w+`, `[a-z0-9-]{1,63}` and `\p{L}+` are well under it).
pub const SIZE_LIMIT: usize = 1 << 20;

/// The most the lazy DFA's cache of one pattern may grow to while matching
/// (`RegexBuilder::dfa_size_limit`). Past it the crate falls back to a slower engine that is still
/// linear; the limit bounds memory, never correctness.
pub const DFA_SIZE_LIMIT: usize = 1 << 20;

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", position.map(|p| format!(" at character {}", p + 1)).unwrap_or_default())]
pub struct PatternError {
    /// The 0-based character index in the pattern where the problem starts, if it has one.
    pub position: Option<usize>,
    /// What is wrong, in the `regex` crate's words.
    pub message: String,
    /// A concrete fix when there is an obvious one.
    pub hint: Option<String>,
}

/// Compiles a `like` / `unlike` pattern to match whole values.
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    // Parsing the pattern on its own first gives positions in the text the user wrote; the regex
    // crate's own error is a multi-line drawing of the anchored pattern.
    if let Err(err) = regex_syntax::ParserBuilder::new().build().parse(pattern) {
        let (message, offset) = match &err {
            regex_syntax::Error::Parse(e) => (e.kind().to_string(), e.span().start.offset),
            regex_syntax::Error::Translate(e) => (e.kind().to_string(), e.span().start.offset),
            other => (other.to_string(), 0),
        };
        return Err(PatternError {
            position: Some(pattern[..offset].chars().count()),
            message,
            hint: None,
        });
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|err| {
            match err {
            regex::Error::CompiledTooBig(limit) => PatternError {
                position: None,
                message: format!("pattern is too large: it compiles to more than {limit} bytes"),
                hint: Some(
                    "Unicode classes such as `\\w` and `\\d` are large when repeated; use an ASCII \
                     class such as `[a-z0-9_]`, or fewer repetitions"
                        .to_owned(),
                ),
            },
            // The pattern parsed on its own, so only a `#` comment of verbose mode (`(?x)`) that
            // runs to the end of the pattern can break the anchored form: it swallows the `)$`.
            other => PatternError {
                position: None,
                message: format!("pattern cannot be anchored to the whole value: {other}"),
                hint: Some("end a `#` comment of `(?x)` mode with a line break".to_owned()),
            },
        }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(pattern: &str, text: &str) -> bool {
        compile(pattern).unwrap().is_match(text)
    }

    #[test]
    fn literals_and_classes_match_the_whole_value() {
        assert!(full("rack-[12]", "rack-1"));
        assert!(full("rack-[12]", "rack-2"));
        assert!(!full("rack-[12]", "rack-10"));
        assert!(!full("rack-[12]", "xrack-1"));
        assert!(full("[^a-c]x", "dx"));
        assert!(!full("[^a-c]x", "bx"));
        assert!(full("[-a]", "-"));
        assert!(full("[a-]", "-"));
        assert!(full("[]a]", "]"));
        assert!(full(r"[\d.]+", "10.0.3"));
        assert!(full("", ""));
        assert!(!full("", "a"));
    }

    #[test]
    fn quantifiers_groups_alternation_anchors() {
        assert!(full("a*", ""));
        assert!(full("a+b?", "aaab"));
        assert!(!full("a+b?", "b"));
        assert!(full("(ab|cd)+", "abcdab"));
        assert!(!full("(ab|cd)+", "abc"));
        assert!(full("(?:x|y){2,3}", "xyx"));
        assert!(!full("(?:x|y){2,3}", "xyxy"));
        assert!(full("a{2}", "aa"));
        assert!(!full("a{2}", "aaa"));
        assert!(full("a{2,}", "aaaaa"));
        assert!(full("^web-\\d+$", "web-42"));
        assert!(full(r"host\.example\.org", "host.example.org"));
        assert!(!full(r"host\.example\.org", "hostxexample.org"));
        assert!(full(".*-prod", "db-1-prod"));
        assert!(!full(".", "\n"));
        assert!(full("a*?b", "aab"));
        assert!(full(r"\w+\s\S", "ab_9 x"));
        assert!(full("x|", ""));
        // Alternation is inside the anchors: neither side may match a part of the value.
        assert!(!full("a|b", "ab"));
        assert!(full("a|ab", "ab"));
    }

    #[test]
    fn nested_empty_loops_terminate() {
        assert!(full("(a*)*", "aaaa"));
        assert!(full("(a?)*b", "b"));
        assert!(!full("(a*)*", "aab"));
    }

    #[test]
    fn pathological_pattern_is_linear() {
        let pattern = format!("{}{}", "a?".repeat(30), "a".repeat(30));
        assert!(full(&pattern, &"a".repeat(30)));
        assert!(!full("(a|aa)*c", &"a".repeat(5000)));
    }

    #[test]
    fn invalid_patterns_name_the_position() {
        let cases = [
            ("rack-[12", 5, "unclosed character class"),
            ("(ab", 0, "unclosed group"),
            ("ab)", 2, "unopened group"),
            ("*a", 0, "repetition operator missing expression"),
            ("a|+", 2, "repetition operator missing expression"),
            ("[z-a]", 1, "start must be <= the end"),
            ("a{3,1}", 1, "start must be <= the end"),
            ("a{2", 1, "unclosed counted repetition"),
            ("{2}", 0, "repetition operator missing expression"),
            // A brace that does not start a repetition must be escaped (`a\{b\}`).
            ("a{b}", 2, "repetition quantifier expects a valid decimal"),
            (r"\1", 0, "backreferences are not supported"),
            (r"\p{Foo}", 0, "Unicode property not found"),
            ("(?=a)", 0, "look-around"),
            ("x\\", 1, "incomplete escape sequence"),
            // Positions count characters, not bytes.
            ("é(", 1, "unclosed group"),
        ];
        for (pattern, position, message) in cases {
            let err = compile(pattern).unwrap_err();
            assert!(
                err.message.contains(message),
                "{pattern}: got {err:?}, wanted {message}"
            );
            assert_eq!(err.position, Some(position), "{pattern}: {err:?}");
            assert_eq!(err.hint, None, "{pattern}");
        }
        assert_eq!(
            compile("rack-[12").unwrap_err().to_string(),
            "unclosed character class at character 6"
        );
    }

    #[test]
    fn escaped_braces_and_the_rest_of_the_syntax_are_accepted() {
        assert!(full(r"a\{b\}", "a{b}"));
        assert!(full("}", "}"));
        assert!(full(r"\p{L}+-\d", "zürich-1"));
        assert!(full("(?i)RACK-1", "rack-1"));
        assert!(full("(?P<rack>r)[0-9]", "r7"));
    }

    #[test]
    fn a_pattern_too_large_to_compile_is_rejected_with_a_hint() {
        for pattern in [r"\w{1000}", "a{5000000}", r"[\w\d]{200}"] {
            let err = compile(pattern).unwrap_err();
            assert!(err.message.contains("too large"), "{pattern}: {err:?}");
            assert_eq!(err.position, None);
            assert!(err.hint.unwrap().contains("[a-z0-9_]"));
        }
        // The same repetitions over an ASCII class fit.
        assert!(full("[a-z0-9_]{1,63}", "web_1"));
    }

    #[test]
    fn verbose_mode_comments_must_end_before_the_anchor() {
        assert!(full("(?x) rack - [12]  # two racks\n", "rack-1"));
        let err = compile("(?x) rack - [12]  # two racks").unwrap_err();
        assert!(err.message.contains("cannot be anchored"), "{err:?}");
        assert!(err.hint.unwrap().contains("line break"));
    }
}
