//! Integration tests of the `spec` module against real files: the examples in `desired/`, the
//! fixtures in `tests/data/specs/`, the JSON Schema in `deploy/`, and `load_dir` on temporary trees
//! (nested directories, ignore rules, bad files, a missing root, symlinked and repointed roots).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use mesos_reconciler::spec::{
    Command, ConstraintOp, DirError, HealthKind, RestartPolicy, SpecId, load_dir, parse,
};

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A directory under the system temp dir, unique to this process and test, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(name: &str) -> TempTree {
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-spec-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempTree(path)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ids<'a>(keys: impl Iterator<Item = &'a SpecId>) -> Vec<&'a str> {
    keys.map(SpecId::as_str).collect()
}

#[test]
fn every_example_in_desired_is_valid() {
    let snapshot = load_dir(&repo("desired")).unwrap();
    let errors: Vec<String> = snapshot.errors.values().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        ids(snapshot.specs.keys()),
        ["batch/report", "hello", "mkdir", "web"]
    );
    let hello = &snapshot.specs[&SpecId::new("hello").unwrap()];
    assert_eq!(hello.command, Command::Shell("echo HelloWorld".into()));
    assert_eq!((hello.cpus, hello.mem), (0.1, 100));
    let mkdir = &snapshot.specs[&SpecId::new("mkdir").unwrap()];
    assert_eq!(
        mkdir.command,
        Command::Shell("mkdir -p /tmp/HelloMesos".into())
    );
    let web = &snapshot.specs[&SpecId::new("web").unwrap()];
    assert_eq!((web.ports, web.restart), (1, RestartPolicy::Always));
    assert!(matches!(
        web.health.as_ref().map(|h| &h.kind),
        Some(HealthKind::Http { port_index: 0, .. })
    ));
}

#[test]
fn every_valid_fixture_parses() {
    let snapshot = load_dir(&repo("tests/data/specs/valid")).unwrap();
    let errors: Vec<String> = snapshot.errors.values().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        ids(snapshot.specs.keys()),
        [
            "argv-tcp-mesos-container",
            "constraints",
            "contract-example",
            "minimal"
        ]
    );
    let constraints = &snapshot.specs[&SpecId::new("constraints").unwrap()];
    assert_eq!(constraints.constraints[0].op, ConstraintOp::MaxPer(2));
}

/// Each invalid fixture starts with `# expect: <line>:<col>: <field>: <message> (hint: ...)`, the
/// error exactly as `validate` prints it after the file name.
#[test]
fn every_invalid_fixture_gives_its_expected_error() {
    let dir = repo("tests/data/specs/invalid");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` first line", path.display()));
        let shown = format!(
            "tests/data/specs/invalid/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let id = SpecId::from_relative_path(Path::new(path.file_name().unwrap())).unwrap();
        let error = parse(&id, &shown, &text).unwrap_err();
        assert_eq!(error.to_string(), format!("{shown}:{expected}"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures found");
}

/// The keys the parser accepts in a table, read from its own "unknown key" error, so this test
/// cannot drift from the deserializer.
fn accepted_keys(prefix: &str, probe: &str) -> BTreeSet<String> {
    let text = format!("{prefix}{probe}");
    let error = parse(&SpecId::new("probe").unwrap(), "probe.toml", &text).unwrap_err();
    let hint = error.hint.unwrap_or_default();
    let list = hint
        .strip_prefix("known keys here: ")
        .unwrap_or_else(|| panic!("unexpected error for {text:?}: {hint}"));
    list.split(", ").map(str::to_owned).collect()
}

fn schema_keys(node: &serde_json::Value) -> BTreeSet<String> {
    assert_eq!(
        node["additionalProperties"],
        serde_json::Value::Bool(false),
        "{node}"
    );
    node["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn json_schema_lists_exactly_the_keys_the_parser_accepts() {
    let text = fs::read_to_string(repo("deploy/task-spec.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let props = &schema["properties"];
    let probe = "zz_not_a_key = 1\n";
    let cases: [(&str, &str, &serde_json::Value); 9] = [
        ("", probe, &schema),
        ("[backoff]\n", probe, &props["backoff"]),
        ("[[uris]]\n", probe, &props["uris"]["items"]),
        ("[container]\n", probe, &props["container"]),
        ("[[constraints]]\n", probe, &props["constraints"]["items"]),
        ("[health]\n", probe, &props["health"]),
        (
            "[health]\n",
            "http = { zz_not_a_key = 1 }\n",
            &props["health"]["properties"]["http"],
        ),
        (
            "[health]\n",
            "tcp = { zz_not_a_key = 1 }\n",
            &props["health"]["properties"]["tcp"],
        ),
        ("[update]\n", probe, &props["update"]),
    ];
    for (prefix, probe, node) in cases {
        assert_eq!(
            schema_keys(node),
            accepted_keys(prefix, probe),
            "table {prefix:?}"
        );
    }
    // Free-form tables: any key, string values.
    for table in ["env", "labels"] {
        assert_eq!(props[table]["additionalProperties"]["type"], "string");
    }
}

#[test]
fn load_dir_walks_nested_dirs_and_applies_the_ignore_rules() {
    let tree = TempTree::new("walk");
    tree.write("web.toml", "command = \"web\"\n");
    tree.write("team-a/api.toml", "command = \"api\"\n");
    tree.write("team-a/deep/er/job.v2.toml", "args = [\"/bin/true\"]\n");
    for ignored in [
        ".hidden.toml",
        "_disabled.toml",
        "web.toml~",
        ".web.toml.swp",
        "web.toml.swp",
        "new.tmp",
        "#web.toml#",
        "README.md",
        "web.toml.bak",
        ".git/config.toml",
        "_archive/old.toml",
        "team-a/.cache/x.toml",
    ] {
        tree.write(ignored, "this is not toml = = =");
    }
    let snapshot = load_dir(&tree.0).unwrap();
    assert!(snapshot.errors.is_empty(), "{:#?}", snapshot.errors);
    assert_eq!(
        ids(snapshot.specs.keys()),
        ["team-a/api", "team-a/deep/er/job.v2", "web"]
    );
    let ignored: BTreeSet<PathBuf> = snapshot.ignored.iter().cloned().collect();
    let expected: BTreeSet<PathBuf> = [
        "#web.toml#",
        ".git",
        ".hidden.toml",
        ".web.toml.swp",
        "README.md",
        "_archive",
        "_disabled.toml",
        "new.tmp",
        "team-a/.cache",
        "web.toml.bak",
        "web.toml.swp",
        "web.toml~",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(ignored, expected);
    assert_eq!(snapshot.root, fs::canonicalize(&tree.0).unwrap());
}

#[test]
fn bad_files_are_error_entries_and_do_not_hide_the_good_ones() {
    let tree = TempTree::new("errors");
    tree.write("good.toml", "command = \"ok\"\n");
    tree.write("typo.toml", "command = \"x\"\ninstnaces = 2\n");
    tree.write("team/Web.toml", "command = \"x\"\n");
    tree.write("a b.toml", "command = \"x\"\n");
    fs::write(tree.path("binary.toml"), b"command = \"\xff\"\n").unwrap();
    let big = format!("command = \"x\"\n{}", "# padding\n".repeat(120_000));
    tree.write("big.toml", &big);
    let snapshot = load_dir(&tree.0).unwrap();
    assert_eq!(ids(snapshot.specs.keys()), ["good"]);

    let keys: Vec<&str> = snapshot.errors.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a b.toml", "big", "binary", "team/Web.toml", "typo"]);
    let shown = |key: &str| snapshot.errors[key].to_string();
    let root = tree.0.display();
    assert_eq!(
        shown("typo"),
        format!(
            "{root}/typo.toml:2:1: instnaces: unknown key `instnaces` (hint: did you mean `instances`?)"
        )
    );
    assert!(
        shown("team/Web.toml").starts_with(&format!(
            "{root}/team/Web.toml: invalid spec file name: `Web` in `team/Web`"
        )),
        "{}",
        shown("team/Web.toml")
    );
    assert!(shown("a b.toml").contains("invalid spec file name"));
    assert_eq!(
        shown("binary"),
        format!("{root}/binary.toml:1:12: is not valid UTF-8")
    );
    assert!(
        shown("big").contains("larger than 1024 KiB"),
        "{}",
        shown("big")
    );
    // Keys of badly named files never pass for spec ids, so the controller can tell them apart.
    assert!(SpecId::new("team/Web.toml").is_err() && SpecId::new("a b.toml").is_err());
    assert_eq!(
        snapshot
            .error_for(&SpecId::new("typo").unwrap())
            .map(|e| e.line),
        Some(2)
    );
}

#[test]
fn a_missing_root_or_a_file_root_is_an_error_not_an_empty_set() {
    let tree = TempTree::new("missing");
    match load_dir(&tree.path("nope")) {
        Err(DirError::Missing { path, .. }) => assert_eq!(path, tree.path("nope")),
        other => panic!("expected Missing, got {other:?}"),
    }
    tree.write("file", "x");
    match load_dir(&tree.path("file")) {
        Err(err @ DirError::NotADirectory { .. }) => {
            assert!(err.to_string().contains("is not a directory"), "{err}")
        }
        other => panic!("expected NotADirectory, got {other:?}"),
    }
    let err = load_dir(&tree.path("nope")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "desired directory {} does not exist",
            tree.path("nope").display()
        )
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_root_is_followed_and_a_repoint_reads_the_new_tree_whole() {
    use std::os::unix::fs::symlink;

    let tree = TempTree::new("symlink-root");
    tree.write("rev-1/web.toml", "command = \"v1\"\n");
    tree.write("rev-1/old.toml", "command = \"old\"\n");
    tree.write("rev-2/web.toml", "command = \"v2\"\n");
    tree.write("rev-2/team/new.toml", "command = \"new\"\n");
    symlink("rev-1", tree.path("current")).unwrap();

    let first = load_dir(&tree.path("current")).unwrap();
    assert_eq!(ids(first.specs.keys()), ["old", "web"]);
    assert_eq!(first.root, fs::canonicalize(tree.path("rev-1")).unwrap());

    // Repoint atomically, as git-sync does: a new link renamed over the old one.
    symlink("rev-2", tree.path("current.new")).unwrap();
    fs::rename(tree.path("current.new"), tree.path("current")).unwrap();
    let second = load_dir(&tree.path("current")).unwrap();
    assert_eq!(ids(second.specs.keys()), ["team/new", "web"]);
    assert_eq!(
        second.specs[&SpecId::new("web").unwrap()].command,
        Command::Shell("v2".into())
    );
    // Messages name files by the path the user gave, not the resolved one.
    tree.write("rev-2/bad.toml", "cpus = 1\n");
    let third = load_dir(&tree.path("current")).unwrap();
    assert!(
        third.errors["bad"]
            .to_string()
            .starts_with(&format!("{}/bad.toml:1:1:", tree.path("current").display()))
    );
}

#[cfg(unix)]
#[test]
fn configmap_style_links_are_followed_and_dangling_ones_are_errors() {
    use std::os::unix::fs::symlink;

    // A Kubernetes ConfigMap volume: `web.toml -> ..data/web.toml`, `..data -> ..2024_01_01`.
    let tree = TempTree::new("configmap");
    tree.write("..2024_01_01/web.toml", "command = \"web\"\n");
    symlink("..2024_01_01", tree.path("..data")).unwrap();
    symlink("..data/web.toml", tree.path("web.toml")).unwrap();
    symlink("..data/gone.toml", tree.path("gone.toml")).unwrap();
    // A directory link back to an ancestor must not loop.
    fs::create_dir(tree.path("sub")).unwrap();
    symlink("..", tree.path("sub/loop")).unwrap();

    let snapshot = load_dir(&tree.0).unwrap();
    assert_eq!(ids(snapshot.specs.keys()), ["web"]);
    let gone = snapshot.errors["gone"].to_string();
    assert!(gone.contains("gone.toml: cannot read"), "{gone}");
    assert!(snapshot.ignored.contains(&PathBuf::from("sub/loop")));
    assert!(snapshot.ignored.contains(&PathBuf::from("..data")));
}
