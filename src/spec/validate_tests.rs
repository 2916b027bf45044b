//! Unit tests of every validation error: its exact line and column, the dotted field, the message
//! and, where there is one, the hint.

use super::parse_tests::{assert_err, ok};
use super::*;

#[test]
fn unknown_keys_are_rejected_with_a_hint() {
    let e = assert_err(
        "command = \"x\"\ninstnaces = 3\n",
        2,
        1,
        "instnaces",
        "unknown key `instnaces`",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `instances`?"));
    assert_eq!(
        e.to_string(),
        "desired/web.toml:2:1: instnaces: unknown key `instnaces` (hint: did you mean `instances`?)"
    );
    let e = assert_err(
        "command = \"x\"\n[backoff]\nfacter = 3\n",
        3,
        1,
        "backoff.facter",
        "unknown key",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `factor`?"));
    let e = assert_err(
        "command = \"x\"\nports = 1\n[health]\nhttp = { port_index = 0, pth = \"/\" }\n",
        4,
        26,
        "health.http.pth",
        "unknown key `pth`",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `path`?"));
    let e = assert_err(
        "command = \"x\"\nmemory = 64\n",
        2,
        1,
        "memory",
        "unknown key",
    );
    assert!(
        e.hint
            .unwrap()
            .starts_with("known keys here: command, args, cpus")
    );
    let e = assert_err(
        "command = \"x\"\n[[constraints]]\nfield = \"a\"\nop = \"unique\"\n[[constraints]]\nfeild = \"b\"\n",
        6,
        1,
        "constraints[1].feild",
        "unknown key",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `field`?"));
}

#[test]
fn type_syntax_and_missing_key_errors_have_positions() {
    let e = assert_err(
        "command = \"x\"\nmem = 1.5\n",
        2,
        7,
        "mem",
        "expected an integer",
    );
    assert_eq!(e.hint, None);
    let e = assert_err(
        "command = \"x\"\nkill_grace = 10\n",
        2,
        14,
        "kill_grace",
        "expected a string",
    );
    assert!(e.hint.unwrap().contains("durations are strings"));
    let e = assert_err(
        "command = \"x\"\ncpus = \"1\"\n",
        2,
        8,
        "cpus",
        "invalid type: string",
    );
    assert!(e.hint.unwrap().contains("without quotes"));
    let e = assert_err(
        "command = \"x\"\n[env]\nPORTX = 8080\n",
        3,
        9,
        "env.PORTX",
        "expected a string",
    );
    assert!(e.hint.unwrap().contains("quote it"));
    assert_err(
        "command = \"x\"\nbackoff = 3\n",
        2,
        11,
        "backoff",
        "expected a table",
    );
    assert_err(
        "command = \"x\"\nargs = \"ls\"\n",
        2,
        8,
        "args",
        "expected an array",
    );
    assert_err(
        "command = \"x\"\n[[constraints]]\nfield = \"a\"\n",
        2,
        1,
        "constraints[0].op",
        "missing key `op`",
    );
    assert_err(
        "command = \"x\"\n[container]\nkind = \"docker\"\n",
        2,
        1,
        "container.image",
        "missing key `image`",
    );
    // Syntax errors: no field, but a position.
    assert_err("command = \"x\nmem = 1\n", 1, 13, "", "");
    assert_err(
        "command = \"x\"\nmem = 1\nmem = 2\n",
        3,
        1,
        "",
        "duplicate key",
    );
}

#[test]
fn command_and_args_rules() {
    let e = assert_err(
        "cpus = 1\n",
        1,
        1,
        "command",
        "missing `command` (or `args`)",
    );
    assert!(e.hint.is_some());
    assert_err("", 1, 1, "command", "missing `command`");
    assert_err(
        "command = \"x\"\nargs = [\"y\"]\n",
        2,
        8,
        "args",
        "not both",
    );
    assert_err("command = \"  \"\n", 1, 11, "command", "must not be empty");
    assert_err("args = []\n", 1, 8, "args", "must not be empty");
    assert_err(
        "args = [\"\", \"a\"]\n",
        1,
        9,
        "args[0]",
        "program to run must not be empty",
    );
    assert_err("args = [\"a\", \"b\\u0000\"]\n", 1, 14, "args[1]", "NUL");
}

#[test]
fn resource_ranges() {
    assert_err(
        "command = \"x\"\ncpus = 0\n",
        2,
        8,
        "cpus",
        "must be more than 0",
    );
    assert_err("command = \"x\"\ncpus = -0.5\n", 2, 8, "cpus", "(got -0.5)");
    assert_err(
        "command = \"x\"\ncpus = nan\n",
        2,
        8,
        "cpus",
        "must be more than 0",
    );
    assert_err(
        "command = \"x\"\ncpus = inf\n",
        2,
        8,
        "cpus",
        "at most 1024",
    );
    assert_err(
        "command = \"x\"\nmem = 0\n",
        2,
        7,
        "mem",
        "must be at least 1 (got 0)",
    );
    let e = assert_err(
        "command = \"x\"\nmem = 1073741824\n",
        2,
        7,
        "mem",
        "must be at most",
    );
    assert!(e.hint.unwrap().contains("MiB"));
    assert_err(
        "command = \"x\"\ndisk = -1\n",
        2,
        8,
        "disk",
        "must not be negative (got -1)",
    );
    assert_err(
        "command = \"x\"\ngpus = -2\n",
        2,
        8,
        "gpus",
        "must not be negative",
    );
    assert_err(
        "command = \"x\"\nports = 101\n",
        2,
        9,
        "ports",
        "at most 100",
    );
    assert_err(
        "command = \"x\"\ninstances = -1\n",
        2,
        13,
        "instances",
        "must not be negative",
    );
}

#[test]
fn enum_words_get_did_you_mean() {
    let e = assert_err(
        "command = \"x\"\nrestart = \"on_failure\"\n",
        2,
        11,
        "restart",
        "must be one of \"always\", \"on-failure\", \"never\"",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"on-failure\"?"));
    let e = assert_err(
        "command = \"x\"\n[update]\nstrategy = \"roling\"\n",
        3,
        12,
        "update.strategy",
        "must be one of",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"rolling\"?"));
    assert_err(
        "command = \"x\"\n[container]\nimage = \"a\"\nkind = \"podman\"\n",
        4,
        8,
        "container.kind",
        "must be one of \"docker\", \"mesos\"",
    );
    let e = assert_err(
        "command = \"x\"\n[[constraints]]\nfield = \"a\"\nop = \"max-per\"\nvalue = 1\n",
        4,
        6,
        "constraints[0].op",
        "must be one of",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"max_per\"?"));
}

#[test]
fn duration_errors_point_at_the_value() {
    let e = assert_err(
        "command = \"x\"\nkill_grace = \"10\"\n",
        2,
        14,
        "kill_grace",
        "no unit",
    );
    assert!(e.hint.unwrap().contains("\"30s\""));
    assert_err(
        "command = \"x\"\nunreachable_after = \"0s\"\n",
        2,
        21,
        "unreachable_after",
        "longer than 0",
    );
    assert_err(
        "command = \"x\"\n[update]\ndeadline = \"10 m\"\n",
        3,
        12,
        "update.deadline",
        "duration",
    );
    assert_err(
        "command = \"x\"\n[health]\ncommand = \"true\"\ninterval = \"0ms\"\n",
        4,
        12,
        "health.interval",
        "longer than 0",
    );
}

#[test]
fn backoff_rules() {
    let e = assert_err(
        "command = \"x\"\n\n[backoff]\ninitial = \"1s\"\n\n\nfactor = 0.5\n",
        7,
        10,
        "backoff.factor",
        "must be at least 1.0 (got 0.5)",
    );
    assert_eq!(
        e.to_string(),
        "desired/web.toml:7:10: backoff.factor: must be at least 1.0 (got 0.5) (hint: 1.0 keeps the delay constant)"
    );
    assert_err(
        "command = \"x\"\n[backoff]\nfactor = 1000.0\n",
        3,
        10,
        "backoff.factor",
        "at most 100",
    );
    assert_err(
        "command = \"x\"\n[backoff]\ninitial = \"10m\"\nmax = \"1m\"\n",
        4,
        7,
        "backoff.max",
        "must not be shorter than backoff.initial (10m)",
    );
    assert_err(
        "command = \"x\"\n[backoff]\ninitial = \"10m\"\n",
        3,
        11,
        "backoff.initial",
        "backoff.max (5m)",
    );
    assert_err(
        "command = \"x\"\n[backoff]\nmax_failures = -1\n",
        3,
        16,
        "backoff.max_failures",
        "must not be negative",
    );
    assert_err(
        "command = \"x\"\n[backoff]\ninitial = \"0s\"\n",
        3,
        11,
        "backoff.initial",
        "longer than 0",
    );
}

#[test]
fn health_rules() {
    let e = assert_err(
        "command = \"x\"\n[health]\ninterval = \"5s\"\n",
        2,
        1,
        "health",
        "exactly one of `command`, `http` or `tcp`",
    );
    assert!(e.hint.is_some());
    assert_err(
        "command = \"x\"\nports = 1\n[health]\ncommand = \"true\"\ntcp = { port_index = 0 }\n",
        5,
        7,
        "health.tcp",
        "exactly one of",
    );
    let e = assert_err(
        "command = \"x\"\n[health]\nhttp = { port_index = 0 }\n",
        3,
        23,
        "health.http.port_index",
        "reserves no ports",
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("set `ports = 1` at the top of the file")
    );
    // Without an explicit port_index the error points at the check itself.
    assert_err(
        "command = \"x\"\n[health]\nhttp = { path = \"/\" }\n",
        3,
        8,
        "health.http.port_index",
        "reserves no ports",
    );
    assert_err(
        "command = \"x\"\nports = 2\n[health]\ntcp = { port_index = 2 }\n",
        4,
        22,
        "health.tcp.port_index",
        "only 2 port(s) (PORT0..PORT1)",
    );
    assert_err(
        "command = \"x\"\nports = 1\n[health]\ntcp = { port_index = -1 }\n",
        4,
        22,
        "health.tcp.port_index",
        "must not be negative",
    );
    assert_err(
        "command = \"x\"\nports = 1\n[health]\nhttp = { path = \"healthz\" }\n",
        4,
        17,
        "health.http.path",
        "must start with `/`",
    );
    assert_err(
        "command = \"x\"\nports = 1\n[health]\nhttp = { scheme = \"ftp\" }\n",
        4,
        19,
        "health.http.scheme",
        "\"http\", \"https\"",
    );
    assert_err(
        "command = \"x\"\n[health]\ncommand = \"true\"\nmax_failures = 0\n",
        4,
        16,
        "health.max_failures",
        "at least 1",
    );
    assert_err(
        "command = \"x\"\n[health]\ncommand = \"\"\n",
        3,
        11,
        "health.command",
        "must not be empty",
    );
}

#[test]
fn constraint_rules() {
    let c = |body: &str| format!("command = \"x\"\n[[constraints]]\n{body}\n");
    assert_err(
        &c("field = \"\"\nop = \"unique\""),
        3,
        9,
        "constraints[0].field",
        "hostname",
    );
    assert_err(
        &c("field = \"a\"\nop = \"unique\"\nvalue = \"x\""),
        5,
        9,
        "constraints[0].value",
        "takes no value",
    );
    assert_err(
        &c("field = \"a\"\nop = \"like\""),
        4,
        6,
        "constraints[0].value",
        "needs `value`: a regular expression",
    );
    assert_err(
        &c("field = \"a\"\nop = \"max_per\""),
        4,
        6,
        "constraints[0].value",
        "needs `value`: a count",
    );
    let e = assert_err(
        &c("field = \"a\"\nop = \"like\"\nvalue = \"rack-[12\""),
        5,
        9,
        "constraints[0].value",
        "invalid regular expression: unclosed character class at character 6",
    );
    assert_eq!(e.hint, None);
    // A pattern that would compile to a huge program is an invalid spec, not a slow controller.
    let e = assert_err(
        &c("field = \"a\"\nop = \"unlike\"\nvalue = '\\w{1000}'"),
        5,
        9,
        "constraints[0].value",
        "invalid regular expression: pattern is too large: it compiles to more than 1048576 bytes",
    );
    assert!(e.hint.unwrap().contains("ASCII class"));
    assert_err(
        &c("field = \"a\"\nop = \"unlike\"\nvalue = 3"),
        5,
        9,
        "constraints[0].value",
        "must be a regular expression string (got integer)",
    );
    assert_err(
        &c("field = \"a\"\nop = \"max_per\"\nvalue = 0"),
        5,
        9,
        "constraints[0].value",
        "must be at least 1 (got 0)",
    );
    let e = assert_err(
        &c("field = \"a\"\nop = \"max_per\"\nvalue = \"2\""),
        5,
        9,
        "constraints[0].value",
        "must be an integer count (got string)",
    );
    assert_eq!(e.hint.as_deref(), Some("write the count without quotes"));
    assert_err(
        &c("field = \"a\"\nop = \"cluster\"\nvalue = true"),
        5,
        9,
        "constraints[0].value",
        "must be a string (got boolean)",
    );
    let spec = ok(&c("field = \"rack\"\nop = \"cluster\"\nvalue = 3"));
    assert_eq!(spec.constraints[0].op, ConstraintOp::Cluster("3".into()));
}

#[test]
fn env_labels_names_and_uris() {
    let e = assert_err(
        "command = \"x\"\n[env]\n\"1A\" = \"b\"\n",
        3,
        1,
        "env.1A",
        "not a valid environment variable name",
    );
    assert!(e.hint.is_some());
    let e = assert_err(
        "command = \"x\"\nports = 1\n[env]\nPORT0 = \"80\"\n",
        4,
        1,
        "env.PORT0",
        "set by the controller",
    );
    assert!(e.hint.unwrap().contains("ports = n"));
    assert_err(
        "command = \"x\"\nenv = { PORT = \"1\" }\n",
        2,
        9,
        "env.PORT",
        "set by the controller",
    );
    ok("command = \"x\"\nenv = { PORTAL = \"1\", PORT_X = \"2\" }\n");
    assert_err(
        "command = \"x\"\n[labels]\n\"\" = \"b\"\n",
        3,
        1,
        "labels",
        "must not be empty",
    );
    assert_err(
        "command = \"x\"\nuser = \"\"\n",
        2,
        8,
        "user",
        "must not be empty",
    );
    assert_err(
        "command = \"x\"\nuser = \"no body\"\n",
        2,
        8,
        "user",
        "spaces",
    );
    assert_err(
        "command = \"x\"\nrole = \"-web\"\n",
        2,
        8,
        "role",
        "not a valid Mesos role",
    );
    assert_err(
        "command = \"x\"\nrole = \"a//b\"\n",
        2,
        8,
        "role",
        "not a valid Mesos role",
    );
    assert_err(
        "command = \"x\"\n[[uris]]\nurl = \"\"\n",
        3,
        7,
        "uris[0].url",
        "must not be empty",
    );
    assert_err(
        "command = \"x\"\n[container]\nimage = \"a b\"\n",
        3,
        9,
        "container.image",
        "spaces",
    );
}

#[test]
fn the_first_error_in_the_file_is_reported() {
    // `mem` (line 2) is checked after `restart` (line 3) internally, yet reported first.
    assert_err(
        "command = \"x\"\nmem = 0\nrestart = \"sometimes\"\n",
        2,
        7,
        "mem",
        "at least 1",
    );
    assert_err(
        "restart = \"sometimes\"\nmem = 0\n",
        1,
        1,
        "command",
        "missing",
    );
}
