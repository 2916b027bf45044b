//! Unit tests of `parse`: defaults, every field, normalisation, and the content hash's stability
//! rules. The error cases are in `validate_tests.rs`; the helpers here are shared with it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

pub(super) const FILE: &str = "desired/web.toml";

pub(super) fn id() -> SpecId {
    SpecId::new("web").unwrap()
}

pub(super) fn ok(text: &str) -> Spec {
    match parse(&id(), FILE, text) {
        Ok(spec) => spec,
        Err(err) => panic!("expected a valid spec, got {err}"),
    }
}

pub(super) fn err(text: &str) -> SpecError {
    match parse(&id(), FILE, text) {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(err) => err,
    }
}

/// Asserts an error's position, field and message (substring), and returns it for more checks.
#[track_caller]
pub(super) fn assert_err(
    text: &str,
    line: usize,
    column: usize,
    field: &str,
    message: &str,
) -> SpecError {
    let error = err(text);
    assert_eq!(
        (error.line, error.column, error.field.as_str()),
        (line, column, field),
        "position/field of: {error}"
    );
    assert!(
        error.message.contains(message),
        "message of `{error}` lacks `{message}`"
    );
    assert_eq!(error.file, FILE);
    error
}

#[test]
fn minimal_spec_gets_every_default() {
    let spec = ok("command = \"echo hi\"\n");
    assert_eq!(spec.id, id());
    assert_eq!(spec.command, Command::Shell("echo hi".into()));
    assert_eq!(spec.cpus, 0.1);
    assert_eq!((spec.mem, spec.disk, spec.gpus, spec.ports), (32, 0, 0, 0));
    assert_eq!(spec.instances, 1);
    assert_eq!(spec.restart, RestartPolicy::OnFailure);
    assert_eq!((spec.user.clone(), spec.role.clone()), (None, None));
    assert_eq!(spec.kill_grace, Duration::from_secs(5));
    assert_eq!(spec.unreachable_after, Duration::from_secs(300));
    assert_eq!(
        spec.backoff,
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            max_failures: 0,
        }
    );
    assert!(spec.env.is_empty() && spec.labels.is_empty());
    assert!(spec.uris.is_empty() && spec.constraints.is_empty());
    assert_eq!(spec.container, None);
    assert_eq!(spec.health, None);
    assert_eq!(
        spec.update,
        UpdatePolicy {
            strategy: UpdateStrategy::Rolling,
            deadline: Duration::from_secs(600),
        }
    );
}

const FULL: &str = r#"
# desired/web.toml
command = "python3 -m http.server $PORT0"
cpus = 0.25
mem = 64
disk = 10
gpus = 1
ports = 2
instances = 2
restart = "always"
user = "nobody"
role = "web/prod"
kill_grace = "10s"
unreachable_after = "1m30s"

[backoff]
initial = "500ms"
factor = 1.5
max = "5m"
reset_after = "10m"
max_failures = 4

[env]
GREETING = "hello"
_X1 = ""

[labels]
team = "a"

[[uris]]
url = "https://example.org/app.tar.gz"

[[uris]]
url = "https://example.org/run.sh"
extract = false
executable = true

[container]
image = "python:3.12-slim"
kind = "docker"

[[constraints]]
field = "hostname"
op = "unique"

[[constraints]]
field = "rack"
op = "like"
value = "rack-[12]"

[[constraints]]
field = "zone"
op = "cluster"
value = "eu-1"

[[constraints]]
field = "rack"
op = "unlike"
value = "rack-9.*"

[[constraints]]
field = "hostname"
op = "max_per"
value = 2

[health]
http = { port_index = 1, path = "/healthz", scheme = "https" }
interval = "15s"
timeout = "2s"
grace = "1m"
max_failures = 5

[update]
strategy = "replace"
deadline = "20m"
"#;

#[test]
fn every_field_is_parsed() {
    let spec = ok(FULL);
    assert_eq!(
        spec.command,
        Command::Shell("python3 -m http.server $PORT0".into())
    );
    assert_eq!(spec.cpus, 0.25);
    assert_eq!((spec.mem, spec.disk, spec.gpus, spec.ports), (64, 10, 1, 2));
    assert_eq!(spec.instances, 2);
    assert_eq!(spec.restart, RestartPolicy::Always);
    assert_eq!(spec.user.as_deref(), Some("nobody"));
    assert_eq!(spec.role.as_deref(), Some("web/prod"));
    assert_eq!(spec.kill_grace, Duration::from_secs(10));
    assert_eq!(spec.unreachable_after, Duration::from_secs(90));
    assert_eq!(spec.backoff.initial, Duration::from_millis(500));
    assert_eq!(spec.backoff.factor, 1.5);
    assert_eq!(spec.backoff.max, Duration::from_secs(300));
    assert_eq!(spec.backoff.reset_after, Duration::from_secs(600));
    assert_eq!(spec.backoff.max_failures, 4);
    let env: BTreeMap<String, String> = [("GREETING", "hello"), ("_X1", "")]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
    assert_eq!(spec.env, env);
    assert_eq!(spec.labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        spec.uris,
        vec![
            Uri {
                url: "https://example.org/app.tar.gz".into(),
                extract: true,
                executable: false
            },
            Uri {
                url: "https://example.org/run.sh".into(),
                extract: false,
                executable: true
            },
        ]
    );
    assert_eq!(
        spec.container,
        Some(Container {
            image: "python:3.12-slim".into(),
            kind: ContainerKind::Docker
        })
    );
    let ops: Vec<(&str, ConstraintOp)> = spec
        .constraints
        .iter()
        .map(|c| (c.field.as_str(), c.op.clone()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("hostname", ConstraintOp::Unique),
            ("rack", ConstraintOp::Like("rack-[12]".into())),
            ("zone", ConstraintOp::Cluster("eu-1".into())),
            ("rack", ConstraintOp::Unlike("rack-9.*".into())),
            ("hostname", ConstraintOp::MaxPer(2)),
        ]
    );
    assert_eq!(
        spec.health,
        Some(HealthCheck {
            kind: HealthKind::Http {
                port_index: 1,
                path: "/healthz".into(),
                scheme: HttpScheme::Https
            },
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(2),
            grace: Duration::from_secs(60),
            max_failures: 5,
        })
    );
    assert_eq!(spec.update.strategy, UpdateStrategy::Replace);
    assert_eq!(spec.update.deadline, Duration::from_secs(1200));
}

#[test]
fn args_health_kinds_and_section_defaults() {
    let spec = ok(r#"
args = ["/usr/bin/python3", "-m", "http.server", "8080"]
ports = 1
cpus = 1
[health]
tcp = { port_index = 0 }
[container]
image = "busybox"
"#);
    assert_eq!(
        spec.command,
        Command::Argv(vec![
            "/usr/bin/python3".into(),
            "-m".into(),
            "http.server".into(),
            "8080".into()
        ])
    );
    assert_eq!(spec.cpus, 1.0, "an integer is accepted for cpus");
    let health = spec.health.unwrap();
    assert_eq!(health.kind, HealthKind::Tcp { port_index: 0 });
    assert_eq!(health.interval, Duration::from_secs(10));
    assert_eq!(health.timeout, Duration::from_secs(5));
    assert_eq!(health.grace, Duration::from_secs(30));
    assert_eq!(health.max_failures, 3);
    assert_eq!(spec.container.unwrap().kind, ContainerKind::Mesos);

    let spec = ok("command = \"x\"\nports = 1\n[health]\nhttp = {}\n");
    assert_eq!(
        spec.health.unwrap().kind,
        HealthKind::Http {
            port_index: 0,
            path: "/".into(),
            scheme: HttpScheme::Http
        }
    );
    let spec = ok("command = \"x\"\n[health]\ncommand = \"test -f /tmp/ok\"\n");
    assert_eq!(
        spec.health.unwrap().kind,
        HealthKind::Command("test -f /tmp/ok".into())
    );
    let spec = ok("command = \"x\"\nrestart = \"never\"\nkill_grace = \"0s\"\ninstances = 0\n");
    assert_eq!(spec.restart, RestartPolicy::Never);
    assert_eq!(spec.kill_grace, Duration::ZERO);
    assert_eq!(spec.instances, 0);
}

#[test]
fn dotted_keys_and_inline_tables_mean_the_same() {
    let a = ok("command = \"x\"\nbackoff.factor = 3.0\nupdate = { strategy = \"replace\" }\n");
    let b = ok("command = \"x\"\n[backoff]\nfactor = 3.0\n[update]\nstrategy = \"replace\"\n");
    assert_eq!(a, b);
}

#[test]
fn hash_ignores_formatting_order_explicit_defaults_and_instances() {
    let base = ok("command = \"echo hi\"\ncpus = 0.5\n[env]\nA = \"1\"\nB = \"2\"\n");
    let reformatted = ok(r#"
# a comment
cpus   =   0.50 # trailing comment
command = 'echo hi'

[env]
B = "2"
A = "1"
"#);
    assert_eq!(base, reformatted);
    assert_eq!(base.content_hash(), reformatted.content_hash());

    let explicit = ok(r#"
command = "echo hi"
cpus = 0.5
mem = 32
disk = 0
gpus = 0
ports = 0
instances = 1
restart = "on-failure"
kill_grace = "5s"
unreachable_after = "5m"
uris = []
constraints = []
[labels]
[env]
A = "1"
B = "2"
[backoff]
initial = "1000ms"
factor = 2
max = "5m"
reset_after = "10m"
max_failures = 0
[update]
strategy = "rolling"
deadline = "10m"
"#);
    assert_eq!(base, explicit);
    assert_eq!(base.content_hash(), explicit.content_hash());

    let scaled =
        ok("command = \"echo hi\"\ncpus = 0.5\ninstances = 7\nenv = { A = \"1\", B = \"2\" }\n");
    assert_ne!(base, scaled);
    assert_eq!(
        base.content_hash(),
        scaled.content_hash(),
        "scaling is not a new generation"
    );

    let text = "command = \"echo hi\"\ncpus = 0.5\nenv = { A = \"1\", B = \"2\" }";
    let other_id = parse(&SpecId::new("team/web").unwrap(), "x.toml", text).unwrap();
    assert_eq!(
        base.content_hash(),
        other_id.content_hash(),
        "the id is not content"
    );
}

#[test]
fn hash_changes_with_any_semantic_change() {
    let base = "command = \"echo hi\"\n";
    let hash = |text: &str| ok(text).content_hash();
    let base_hash = hash(base);
    for changed in [
        "command = \"echo ho\"\n",
        "args = [\"echo\", \"hi\"]\n",
        "command = \"echo hi\"\ncpus = 0.2\n",
        "command = \"echo hi\"\nmem = 33\n",
        "command = \"echo hi\"\nports = 1\n",
        "command = \"echo hi\"\nrestart = \"always\"\n",
        "command = \"echo hi\"\nkill_grace = \"6s\"\n",
        "command = \"echo hi\"\nenv = { A = \"1\" }\n",
        "command = \"echo hi\"\nlabels = { A = \"1\" }\n",
        "command = \"echo hi\"\nbackoff = { factor = 2.5 }\n",
        "command = \"echo hi\"\nupdate = { strategy = \"replace\" }\n",
        "command = \"echo hi\"\ncontainer = { image = \"busybox\" }\n",
        "command = \"echo hi\"\nuser = \"nobody\"\n",
        "command = \"echo hi\"\nconstraints = [{ field = \"hostname\", op = \"unique\" }]\n",
    ] {
        assert_ne!(hash(changed), base_hash, "{changed}");
    }
}

#[test]
fn hash_is_stable_across_runs_and_platforms() {
    // A golden value: if this changes, every running task would be seen as a new generation after
    // an upgrade. Change it only together with the canonical version tag in hash.rs.
    let spec = ok("command = \"echo HelloWorld\"\ncpus = 0.1\nmem = 100\n");
    assert_eq!(spec.content_hash().to_string(), GOLDEN_HELLO_HASH);
}

const GOLDEN_HELLO_HASH: &str = "1a560c7c42d4f0aadea1c4dde7298fed";

#[test]
fn specs_round_trip_through_json_for_the_store() {
    let spec = ok(FULL);
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains("\"kill_grace\":10000"), "{json}");
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.content_hash(), spec.content_hash());
}
