//! From the spec file as written ([`RawSpec`]) to the normalised [`Spec`]: defaults filled in, every
//! value range- and syntax-checked, every error pointing at the line and column of the offending value.
//!
//! All problems are collected and the one that comes first in the file is returned, so a user fixing
//! errors top to bottom sees them in order. Defaults live here, next to the checks (constraints and
//! health checks in `validate_sections.rs`), and are the ones `shared/task-spec.md` and
//! `deploy/task-spec.schema.json` document.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::duration::parse_duration;
use super::error::{SpecError, closest, from_toml, join_path};
use super::model::{
    Backoff, Command, Container, ContainerKind, RestartPolicy, Spec, SpecId, UpdatePolicy,
    UpdateStrategy, Uri,
};
use super::policy::SpecPolicy;
use super::raw::{RawBackoff, RawSpec, RawUpdate, RawUri};

/// Parses and validates one spec file. `file` is only used in messages (e.g. `desired/web.toml`);
/// `text` is the file's content. No IO.
pub fn parse(id: &SpecId, file: &str, text: &str) -> Result<Spec, SpecError> {
    parse_with(id, file, text, &SpecPolicy::default())
}

/// [`parse`] under the operator's [`SpecPolicy`]: a `user` the policy does not allow is an error
/// at that value.
pub fn parse_with(
    id: &SpecId,
    file: &str,
    text: &str,
    policy: &SpecPolicy,
) -> Result<Spec, SpecError> {
    let raw: RawSpec = toml::from_str(text).map_err(|err| from_toml(file, text, &err))?;
    let mut check = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    if let Some(user) = &raw.user {
        if !policy.allows_user(user.get_ref()) {
            let message = format!(
                "user `{}` is not allowed on this controller (allowed: {})",
                user.get_ref(),
                policy.allowed_list()
            );
            check.errors.push(
                SpecError::at(file, text, user.span(), "user", message).with_hint(
                    "use an allowed user, or ask the operator to add it to --allowed-users",
                ),
            );
        }
    }
    let spec = check.spec(id, raw);
    match check.errors.into_iter().min_by_key(|e| (e.line, e.column)) {
        Some(first) => Err(first),
        None => Ok(spec),
    }
}

pub(super) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// Upper bounds that catch unit slips (bytes written as MiB) rather than limit real tasks.
const MAX_CPUS: f64 = 1024.0;
const MAX_MEM_MIB: i64 = 16 * 1024 * 1024;
const MAX_DISK_MIB: i64 = 1024 * 1024 * 1024;
const MAX_GPUS: i64 = 1024;
const MAX_PORTS: i64 = 100;
const MAX_INSTANCES: i64 = 100_000;
const MAX_BACKOFF_FACTOR: f64 = 100.0;

/// Collects errors while building the spec, so every problem is found and the first one in the file
/// is reported. A check that fails records its error and returns a placeholder (usually the default)
/// so the walk can go on; `parse` discards the spec whenever any error was recorded.
pub(super) struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    fn spec(&mut self, id: &SpecId, raw: RawSpec) -> Spec {
        let command = self.command(raw.command, raw.args);
        let ports = self.int(raw.ports, "ports", 0, 0, MAX_PORTS, None) as u32;
        let mem_hint = "mem is in MiB, e.g. `mem = 512` for half a GiB";
        Spec {
            id: id.clone(),
            command,
            cpus: self.cpus(raw.cpus),
            mem: self.int(raw.mem, "mem", 32, 1, MAX_MEM_MIB, Some(mem_hint)) as u64,
            disk: self.int(raw.disk, "disk", 0, 0, MAX_DISK_MIB, Some("disk is in MiB")) as u64,
            gpus: self.int(raw.gpus, "gpus", 0, 0, MAX_GPUS, None) as u64,
            ports,
            instances: self.int(raw.instances, "instances", 1, 0, MAX_INSTANCES, None) as u32,
            restart: self.choice(
                raw.restart,
                "restart",
                &[
                    ("always", RestartPolicy::Always),
                    ("on-failure", RestartPolicy::OnFailure),
                    ("never", RestartPolicy::Never),
                ],
                RestartPolicy::OnFailure,
            ),
            user: self.name(raw.user, "user"),
            role: self.role(raw.role),
            kill_grace: self.duration(raw.kill_grace, "kill_grace", secs(5), false),
            unreachable_after: self.duration(
                raw.unreachable_after,
                "unreachable_after",
                mins(5),
                true,
            ),
            backoff: self.backoff(raw.backoff),
            env: self.env(raw.env),
            labels: self.labels(raw.labels),
            uris: raw
                .uris
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, uri)| self.uri(i, uri))
                .collect(),
            container: raw.container.map(|container| {
                let container = container.into_inner();
                let image = self.word(container.image, "container.image");
                let kind = self.choice(
                    container.kind,
                    "container.kind",
                    &[
                        ("docker", ContainerKind::Docker),
                        ("mesos", ContainerKind::Mesos),
                    ],
                    ContainerKind::Mesos,
                );
                Container { image, kind }
            }),
            constraints: raw
                .constraints
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, constraint)| self.constraint(i, constraint))
                .collect(),
            health: raw.health.map(|health| self.health(health, ports)),
            update: self.update(raw.update),
        }
    }

    pub(super) fn error(
        &mut self,
        span: Range<usize>,
        field: &str,
        message: String,
        hint: Option<String>,
    ) {
        let error = SpecError::at(self.file, self.text, span, field, message).with_hint_opt(hint);
        self.errors.push(error);
    }

    fn command(
        &mut self,
        command: Option<Spanned<String>>,
        args: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Command {
        match (command, args) {
            (Some(_), Some(args)) => {
                self.error(
                    args.span(),
                    "args",
                    "give either `command` or `args`, not both".to_owned(),
                    Some(
                        "`command` runs with /bin/sh -c; `args` is exec'd without a shell"
                            .to_owned(),
                    ),
                );
                Command::Argv(Vec::new())
            }
            (None, None) => {
                self.error(
                    0..0,
                    "command",
                    "missing `command` (or `args`): the spec must say what to run".to_owned(),
                    Some("e.g. `command = \"python3 -m http.server $PORT0\"`".to_owned()),
                );
                Command::Shell(String::new())
            }
            (Some(command), None) => {
                let span = command.span();
                let command = command.into_inner();
                if command.trim().is_empty() {
                    self.error(span, "command", "must not be empty".to_owned(), None);
                } else if command.contains('\0') {
                    self.error(
                        span,
                        "command",
                        "must not contain a NUL character".to_owned(),
                        None,
                    );
                }
                Command::Shell(command)
            }
            (None, Some(args)) => {
                let span = args.span();
                let args = args.into_inner();
                match args.first() {
                    None => self.error(
                        span,
                        "args",
                        "must not be empty: the first element is the program to run".to_owned(),
                        None,
                    ),
                    Some(program) if program.get_ref().is_empty() => self.error(
                        program.span(),
                        "args[0]",
                        "the program to run must not be empty".to_owned(),
                        None,
                    ),
                    Some(_) => {}
                }
                for (i, arg) in args.iter().enumerate() {
                    if arg.get_ref().contains('\0') {
                        let field = format!("args[{i}]");
                        let message = "must not contain a NUL character".to_owned();
                        self.error(arg.span(), &field, message, None);
                    }
                }
                Command::Argv(args.into_iter().map(Spanned::into_inner).collect())
            }
        }
    }

    fn cpus(&mut self, cpus: Option<Spanned<f64>>) -> f64 {
        let Some(cpus) = cpus else { return 0.1 };
        let value = *cpus.get_ref();
        if !value.is_finite() || value <= 0.0 || value > MAX_CPUS {
            let message = format!("must be more than 0 and at most {MAX_CPUS} (got {value})");
            self.error(cpus.span(), "cpus", message, None);
            return 0.1;
        }
        value
    }

    /// An integer in `min..=max`; out of range is an error and yields the default, so the returned
    /// value always fits the model's unsigned type.
    pub(super) fn int(
        &mut self,
        value: Option<Spanned<i64>>,
        field: &str,
        default: i64,
        min: i64,
        max: i64,
        hint_if_too_big: Option<&str>,
    ) -> i64 {
        let Some(value) = value else { return default };
        let got = *value.get_ref();
        if got < min || got > max {
            let message = if got < min && min == 0 {
                format!("must not be negative (got {got})")
            } else if got < min {
                format!("must be at least {min} (got {got})")
            } else {
                format!("must be at most {max} (got {got})")
            };
            let hint = hint_if_too_big.filter(|_| got > max).map(str::to_owned);
            self.error(value.span(), field, message, hint);
            return default;
        }
        got
    }

    /// One of a fixed set of words; a near miss gets a "did you mean".
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: Option<Spanned<String>>,
        field: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        if let Some((_, chosen)) = options.iter().find(|(word, _)| *word == value.get_ref()) {
            return *chosen;
        }
        let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
        let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        let message = format!(
            "must be one of {} (got {:?})",
            quoted.join(", "),
            value.get_ref()
        );
        let hint = closest(value.get_ref(), &words).map(|best| format!("did you mean \"{best}\"?"));
        self.error(value.span(), field, message, hint);
        default
    }

    pub(super) fn duration(
        &mut self,
        value: Option<Spanned<String>>,
        field: &str,
        default: Duration,
        positive: bool,
    ) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(duration) if positive && duration.is_zero() => {
                self.error(
                    value.span(),
                    field,
                    "must be longer than 0".to_owned(),
                    None,
                );
                default
            }
            Ok(duration) => duration,
            Err(err) => {
                self.error(value.span(), field, err.message, err.hint);
                default
            }
        }
    }

    /// A non-empty string without whitespace (an image name, a URL).
    fn word(&mut self, value: Spanned<String>, field: &str) -> String {
        let text = value.get_ref();
        if text.is_empty() {
            self.error(value.span(), field, "must not be empty".to_owned(), None);
        } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let message = format!("must not contain spaces or control characters (got {text:?})");
            self.error(value.span(), field, message, None);
        }
        value.into_inner()
    }

    fn name(&mut self, value: Option<Spanned<String>>, field: &str) -> Option<String> {
        value.map(|value| self.word(value, field))
    }

    /// Mesos role names: not `.` or `..`, no leading `-`, no whitespace; `/` separates hierarchy.
    fn role(&mut self, value: Option<Spanned<String>>) -> Option<String> {
        let value = value?;
        let span = value.span();
        let role = self.word(value, "role");
        let bad_segment = role.split('/').any(|segment| {
            segment.is_empty() || segment == "." || segment == ".." || segment.starts_with('-')
        });
        if !role.is_empty() && bad_segment {
            let message = format!(
                "`{role}` is not a valid Mesos role: parts between `/` must be non-empty, not `.` \
                 or `..`, and not start with `-`"
            );
            self.error(span, "role", message, None);
        }
        Some(role)
    }

    fn backoff(&mut self, raw: Option<Spanned<RawBackoff>>) -> Backoff {
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return default_backoff();
        };
        let defaults = default_backoff();
        let initial_span = raw.initial.as_ref().map(Spanned::span);
        let initial = self.duration(raw.initial, "backoff.initial", defaults.initial, true);
        let factor = match raw.factor {
            None => defaults.factor,
            Some(factor) => {
                let value = *factor.get_ref();
                if !value.is_finite() || !(1.0..=MAX_BACKOFF_FACTOR).contains(&value) {
                    let message = if value < 1.0 {
                        format!("must be at least 1.0 (got {value})")
                    } else {
                        format!("must be at most {MAX_BACKOFF_FACTOR} (got {value})")
                    };
                    let hint = (value < 1.0).then(|| "1.0 keeps the delay constant".to_owned());
                    self.error(factor.span(), "backoff.factor", message, hint);
                    defaults.factor
                } else {
                    value
                }
            }
        };
        let max_span = raw.max.as_ref().map(Spanned::span);
        let max = self.duration(raw.max, "backoff.max", defaults.max, true);
        if max < initial {
            let (span, field) = match (max_span, initial_span) {
                (Some(span), _) => (span, "backoff.max"),
                (None, Some(span)) => (span, "backoff.initial"),
                (None, None) => (0..0, "backoff.max"),
            };
            let message = format!(
                "backoff.max ({}) must not be shorter than backoff.initial ({})",
                super::duration::format_duration(max),
                super::duration::format_duration(initial)
            );
            self.error(span, field, message, None);
        }
        Backoff {
            initial,
            factor,
            max,
            reset_after: self.duration(
                raw.reset_after,
                "backoff.reset_after",
                defaults.reset_after,
                true,
            ),
            max_failures: self.int(
                raw.max_failures,
                "backoff.max_failures",
                0,
                0,
                i64::from(u32::MAX),
                None,
            ) as u32,
        }
    }

    fn env(
        &mut self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (key, value) in raw.unwrap_or_default() {
            let name = key.get_ref();
            let field = join_path("env", name);
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let is_port = name == "PORT"
                || name
                    .strip_prefix("PORT")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                let message = format!("`{name}` is not a valid environment variable name");
                let hint = "use letters, digits and `_`, not starting with a digit".to_owned();
                self.error(key.span(), &field, message, Some(hint));
            } else if is_port {
                let message = format!("`{name}` is set by the controller from the reserved ports");
                let hint = "reserve ports with `ports = n` and read PORT0..PORTn-1".to_owned();
                self.error(key.span(), &field, message, Some(hint));
            }
            if value.get_ref().contains('\0') {
                self.error(
                    value.span(),
                    &field,
                    "must not contain a NUL character".to_owned(),
                    None,
                );
            }
            env.insert(key.into_inner(), value.into_inner());
        }
        env
    }

    fn labels(
        &mut self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    ) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for (key, value) in raw.unwrap_or_default() {
            if key.get_ref().is_empty() {
                self.error(
                    key.span(),
                    "labels",
                    "a label key must not be empty".to_owned(),
                    None,
                );
            }
            labels.insert(key.into_inner(), value.into_inner());
        }
        labels
    }

    fn uri(&mut self, index: usize, raw: Spanned<RawUri>) -> Uri {
        let raw = raw.into_inner();
        Uri {
            url: self.word(raw.url, &format!("uris[{index}].url")),
            extract: raw.extract.unwrap_or(true),
            executable: raw.executable.unwrap_or(false),
        }
    }

    fn update(&mut self, raw: Option<Spanned<RawUpdate>>) -> UpdatePolicy {
        let raw = raw.map(Spanned::into_inner);
        let (strategy, deadline) = raw
            .map(|raw| (raw.strategy, raw.deadline))
            .unwrap_or_default();
        UpdatePolicy {
            strategy: self.choice(
                strategy,
                "update.strategy",
                &[
                    ("rolling", UpdateStrategy::Rolling),
                    ("replace", UpdateStrategy::Replace),
                ],
                UpdateStrategy::Rolling,
            ),
            deadline: self.duration(deadline, "update.deadline", mins(10), true),
        }
    }
}

fn default_backoff() -> Backoff {
    Backoff {
        initial: secs(1),
        factor: 2.0,
        max: mins(5),
        reset_after: mins(10),
        max_failures: 0,
    }
}
