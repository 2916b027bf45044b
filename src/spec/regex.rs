//! A small regular-expression engine for `like` / `unlike` placement constraints.
//!
//! The crate has no regex dependency, and constraints need only a modest dialect, so this module
//! parses a subset of the `regex` crate's syntax and matches it with a Pike VM (a breadth-first NFA
//! simulation), which runs in time linear in the input and cannot be made to backtrack
//! exponentially by a hostile pattern.
//!
//! Supported: literals; `.` (any character but newline); classes `[abc]`, `[a-z0-9]`, `[^x]`;
//! `\d \w \s \D \W \S`; escaped punctuation (`\.`, `\-`, `\[`, ...), `\n \t \r`; groups `(...)` and
//! `(?:...)`; alternation `|`; quantifiers `* + ? {n} {n,} {n,m}`, optionally lazy (`*?`, which means
//! the same here since only whether it matches is asked); anchors `^ $`. Anything else (backreferences,
//! lookaround, flags, Unicode classes, POSIX classes) is rejected with its position rather than
//! misread. Matching is against the whole value, as Marathon's LIKE/UNLIKE do: `rack-[12]` matches
//! `rack-1`, not `rack-10`.

use std::fmt;

/// A compiled pattern.
#[derive(Clone)]
pub struct Regex {
    pattern: String,
    program: Vec<Inst>,
}

/// Why a pattern was rejected. `position` is the 0-based character index where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {}", position + 1)]
pub struct RegexError {
    pub position: usize,
    pub message: String,
}

/// Counted repetitions are expanded into copies, so they are bounded to keep programs small.
const MAX_REPEAT: u32 = 1000;
const MAX_PROGRAM: usize = 20_000;

impl Regex {
    /// Parses and compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let node = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            // `alternation` only stops early at a `)` with no matching `(`.
            return Err(parser.error("unmatched `)`"));
        }
        let mut program = Vec::new();
        compile(&node, &mut program);
        program.push(Inst::Match);
        if program.len() > MAX_PROGRAM {
            return Err(RegexError {
                position: 0,
                message: "pattern is too large".to_owned(),
            });
        }
        Ok(Regex {
            pattern: pattern.to_owned(),
            program,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    pub fn is_full_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut marks = vec![usize::MAX; self.program.len()];
        let mut current = Vec::new();
        let mut next = Vec::new();
        self.add_thread(&mut current, &mut marks, 0, 0, chars.len());
        for (i, &c) in chars.iter().enumerate() {
            next.clear();
            for &pc in &current {
                if let Inst::Char(class) = &self.program[pc]
                    && class.matches(c)
                {
                    self.add_thread(&mut next, &mut marks, pc + 1, i + 1, chars.len());
                }
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                return false;
            }
        }
        current
            .iter()
            .any(|&pc| matches!(self.program[pc], Inst::Match))
    }

    /// Adds the thread at `pc` for input position `pos`, following jumps, splits and anchors. `marks`
    /// records the position each pc was last added at, so epsilon loops such as `(a*)*` end.
    fn add_thread(
        &self,
        list: &mut Vec<usize>,
        marks: &mut [usize],
        pc: usize,
        pos: usize,
        len: usize,
    ) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if marks[pc] == pos {
                continue;
            }
            marks[pc] = pos;
            match &self.program[pc] {
                Inst::Jmp(to) => stack.push(*to),
                Inst::Split(first, second) => {
                    stack.push(*second);
                    stack.push(*first);
                }
                Inst::AssertStart => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::AssertEnd => {
                    if pos == len {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Match => list.push(pc),
            }
        }
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.pattern)
    }
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Char(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

/// A set of characters: inclusive ranges, possibly negated.
#[derive(Debug, Clone)]
struct Class {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl Class {
    fn single(c: char) -> Class {
        Class {
            ranges: vec![(c, c)],
            negated: false,
        }
    }

    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

#[derive(Debug, Clone)]
enum Inst {
    Char(Class),
    Split(usize, usize),
    Jmp(usize),
    AssertStart,
    AssertEnd,
    Match,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn error(&self, message: &str) -> RegexError {
        RegexError {
            position: self.pos,
            message: message.to_owned(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concatenation()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Node::Alt(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.remove(0),
            _ => Node::Concat(items),
        })
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, RegexError> {
        let start = self.pos;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            // `{` starts a repetition only when a digit follows; otherwise it is a literal.
            Some('{')
                if self
                    .chars
                    .get(self.pos + 1)
                    .is_some_and(char::is_ascii_digit) =>
            {
                let counted = self.counted()?;
                // Step back onto the `}` so the shared `pos += 1` below moves past it.
                self.pos -= 1;
                counted
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err(self.error("a quantifier cannot follow another quantifier"));
        }
        if matches!(atom, Node::Start | Node::End) {
            self.pos = start;
            return Err(self.error("an anchor cannot be repeated"));
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    /// Reads `{n}`, `{n,}` or `{n,m}` starting at the `{`, leaving `pos` just past the `}`. Range
    /// problems are reported at the `{`.
    fn counted(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        let brace = self.pos;
        self.pos += 1;
        let min = self.number()?;
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.number()?)
            }
        } else {
            Some(min)
        };
        if self.peek() != Some('}') {
            return Err(self.error("expected `}` to close the repetition"));
        }
        self.pos += 1;
        let at_brace = |message: &str| RegexError {
            position: brace,
            message: message.to_owned(),
        };
        if max.is_some_and(|max| max < min) {
            return Err(at_brace("repetition range is backwards"));
        }
        if max.unwrap_or(min) > MAX_REPEAT {
            return Err(at_brace("repetition count is larger than 1000"));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32, RegexError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits
            .parse()
            .map_err(|_| self.error("expected a number in the repetition"))
    }

    fn atom(&mut self) -> Result<Node, RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of pattern"));
        };
        let start = self.pos;
        self.pos += 1;
        match c {
            '(' => {
                if self.peek() == Some('?') {
                    if self.chars.get(self.pos + 1) == Some(&':') {
                        self.pos += 2;
                    } else {
                        return Err(
                            self.error("unsupported group syntax: only `(?:...)` is supported")
                        );
                    }
                }
                let inner = self.alternation()?;
                if self.peek() != Some(')') {
                    self.pos = start;
                    return Err(self.error("unclosed `(`"));
                }
                self.pos += 1;
                Ok(inner)
            }
            '[' => self.class(start).map(Node::Char),
            '.' => Ok(Node::Char(Class {
                ranges: vec![('\n', '\n')],
                negated: true,
            })),
            '^' => Ok(Node::Start),
            '$' => Ok(Node::End),
            '\\' => self.escape().map(Node::Char),
            '*' | '+' | '?' => {
                self.pos = start;
                Err(self.error("a quantifier needs something before it to repeat"))
            }
            '{' if self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                self.pos = start;
                Err(self.error("a repetition needs something before it to repeat"))
            }
            _ => Ok(Node::Char(Class::single(c))),
        }
    }

    /// After a `\`: a class shorthand or an escaped character.
    fn escape(&mut self) -> Result<Class, RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.error("pattern ends with a lone `\\`"));
        };
        self.pos += 1;
        let class = |ranges: &[(char, char)], negated| Class {
            ranges: ranges.to_vec(),
            negated,
        };
        const DIGIT: &[(char, char)] = &[('0', '9')];
        const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        const SPACE: &[(char, char)] = &[('\t', '\r'), (' ', ' ')];
        Ok(match c {
            'd' => class(DIGIT, false),
            'D' => class(DIGIT, true),
            'w' => class(WORD, false),
            'W' => class(WORD, true),
            's' => class(SPACE, false),
            'S' => class(SPACE, true),
            'n' => Class::single('\n'),
            't' => Class::single('\t'),
            'r' => Class::single('\r'),
            c if c.is_ascii_punctuation() || c == ' ' => Class::single(c),
            _ => {
                self.pos -= 2;
                return Err(self.error(&format!("unsupported escape `\\{c}`")));
            }
        })
    }

    /// After a `[`: the class up to its `]`.
    fn class(&mut self, start: usize) -> Result<Class, RegexError> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return Err(self.error("unclosed `[`"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' {
                return Err(self.error("`[` inside a class is not supported; escape it as `\\[`"));
            }
            let item_start = self.pos;
            self.pos += 1;
            let lo = if c == '\\' {
                let escaped = self.escape()?;
                if escaped.negated {
                    self.pos = item_start;
                    return Err(self.error(
                        "negated shorthands (`\\D`, `\\W`, `\\S`) are not supported inside a class",
                    ));
                }
                match escaped.ranges.as_slice() {
                    [(lo, hi)] if lo == hi => *lo,
                    // A shorthand such as `\d` adds its ranges and cannot start a range itself.
                    _ => {
                        ranges.extend(escaped.ranges);
                        continue;
                    }
                }
            } else {
                c
            };
            // A `-` between two characters makes a range; at either end it is a literal.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.pos += 1;
                let hi_char = self.chars[self.pos];
                self.pos += 1;
                let hi = if hi_char == '\\' {
                    self.single_escape()?
                } else {
                    hi_char
                };
                if hi < lo {
                    self.pos = item_start;
                    return Err(self.error(&format!("class range `{lo}-{hi}` is backwards")));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Class { ranges, negated })
    }

    /// An escape that must stand for one character (the end of a class range).
    fn single_escape(&mut self) -> Result<char, RegexError> {
        let escaped = self.escape()?;
        match escaped.ranges.as_slice() {
            [(lo, hi)] if lo == hi && !escaped.negated => Ok(*lo),
            _ => Err(self.error("a class range must end in a single character")),
        }
    }
}

/// Appends the Pike VM instructions for `node`.
fn compile(node: &Node, program: &mut Vec<Inst>) {
    match node {
        Node::Empty => {}
        Node::Char(class) => program.push(Inst::Char(class.clone())),
        Node::Start => program.push(Inst::AssertStart),
        Node::End => program.push(Inst::AssertEnd),
        Node::Concat(items) => items.iter().for_each(|item| compile(item, program)),
        Node::Alt(branches) => {
            // split L1, next; L1: branch; jmp end; next: split L2, ... ; last branch; end:
            let mut jumps_to_end = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = program.len();
                    program.push(Inst::Split(split + 1, 0));
                    compile(branch, program);
                    jumps_to_end.push(program.len());
                    program.push(Inst::Jmp(0));
                    let next = program.len();
                    program[split] = Inst::Split(split + 1, next);
                } else {
                    compile(branch, program);
                }
            }
            let end = program.len();
            for at in jumps_to_end {
                program[at] = Inst::Jmp(end);
            }
        }
        Node::Repeat { node, min, max } => {
            for _ in 0..*min {
                compile(node, program);
            }
            match max {
                None => {
                    // loop: split body, out; body; jmp loop; out:
                    let split = program.len();
                    program.push(Inst::Split(split + 1, 0));
                    compile(node, program);
                    program.push(Inst::Jmp(split));
                    let out = program.len();
                    program[split] = Inst::Split(split + 1, out);
                }
                Some(max) => {
                    // Each optional copy: split body, out; body. All outs go to the end.
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(program.len());
                        program.push(Inst::Split(program.len() + 1, 0));
                        compile(node, program);
                    }
                    let out = program.len();
                    for at in splits {
                        program[at] = Inst::Split(at + 1, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().is_full_match(text)
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
            ("rack-[12", 5, "unclosed `[`"),
            ("(ab", 0, "unclosed `(`"),
            ("ab)", 2, "unmatched `)`"),
            ("*a", 0, "needs something before it"),
            ("a|+", 2, "needs something before it"),
            ("a**", 2, "cannot follow another quantifier"),
            ("[z-a]", 1, "backwards"),
            ("a{3,1}", 1, "backwards"),
            ("a{2", 3, "expected `}`"),
            ("a{5000}", 1, "larger than 1000"),
            ("{2}", 0, "needs something before it"),
            (r"\1", 0, "unsupported escape"),
            (r"\p{L}", 0, "unsupported escape"),
            ("(?=a)", 1, "unsupported group"),
            ("x\\", 2, "lone"),
            ("^*", 1, "cannot be repeated"),
        ];
        for (pattern, position, message) in cases {
            let err = Regex::new(pattern).unwrap_err();
            assert!(
                err.message.contains(message),
                "{pattern}: got {err:?}, wanted {message}"
            );
            assert_eq!(err.position, position, "{pattern}: {err:?}");
        }
    }

    #[test]
    fn literal_braces_are_allowed_when_not_a_repetition() {
        assert!(full("a{b}", "a{b}"));
        assert!(full("}", "}"));
    }
}
