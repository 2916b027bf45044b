//! The binary's user-facing contract: exit codes (0 ok, 2 invalid specs, 64 bad usage) and the
//! messages `validate` prints for bad files.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args(args)
        .env_remove("MESOS_RECONCILER_MASTER")
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mr-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn version_and_help_exit_zero() {
    let out = bin(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).starts_with("mesos-reconciler "),
        "{}",
        text(&out)
    );
    let out = bin(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for sub in [
        "run",
        "dev",
        "validate",
        "status",
        "plan",
        "logs",
        "approve-deletions",
        "devcluster",
        "bench",
    ] {
        assert!(text(&out).contains(sub), "help lists {sub}: {}", text(&out));
    }
}

#[test]
fn usage_errors_exit_64_not_2() {
    let out = bin(&["run"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("--master"), "{}", text(&out));
    let out = bin(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    // A zk:// URL is the whole --master value, never part of a list.
    let said = run_refused(&["--master", "127.0.0.1:5050,zk://127.0.0.1:2181/mesos"]);
    assert!(said.contains("cannot be part of a list"), "{said}");
    assert!(said.contains("host:port list"), "{said}");
    let said = run_refused(&["--master", "zk://alice:s3cret@127.0.0.1:0/mesos"]);
    assert!(
        said.contains("--master") && !said.contains("s3cret"),
        "{said}"
    );
    let said = run_refused(&["--master", "m1:5050", "--ha", "zk://127.0.0.1:2181"]);
    assert!(said.contains("--ha needs a path"), "{said}");
    let said = run_refused(&["--master", "ftp://m1:5050"]);
    assert!(said.contains("unsupported scheme"), "{said}");
}

/// `run` with `args` (and a status port of its own): it must exit 64 at once. Returns what it
/// said.
fn run_refused(args: &[&str]) -> String {
    let mut all = vec!["run", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let out = bin(&all);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    text(&out)
}

#[test]
fn devcluster_several_masters_need_zookeeper_and_one_address_each() {
    let out = bin(&["devcluster", "--masters", "3"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("add --zk"), "{}", text(&out));
    let out = bin(&[
        "devcluster",
        "--zk",
        "zk://127.0.0.1:1/mesos",
        "--masters",
        "3",
        "--listen",
        "127.0.0.1:0,127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("needs 3 addresses in --listen"),
        "{}",
        text(&out)
    );
    let out = bin(&["devcluster", "--zk", "http://zk:2181/mesos"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("--zk:"), "{}", text(&out));
}

#[test]
fn validate_reports_file_line_column_and_exits_2() {
    let dir = temp_dir("validate");
    std::fs::write(dir.join("ok.toml"), "command = \"true\"\n").unwrap();
    std::fs::write(dir.join("typo.toml"), "command = \"true\"\ninstnaces = 2\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a spec").unwrap();
    let out = bin(&["validate", "-v", "--desired", dir.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("typo.toml:2:1: instnaces"), "{t}");
    assert!(t.contains("did you mean `instances`?"), "{t}");
    assert!(t.contains("ok: ok"), "{t}");
    assert!(t.contains("ignored: notes.txt"), "{t}");
    std::fs::remove_file(dir.join("typo.toml")).unwrap();
    let out = bin(&["validate", "--desired", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn validate_of_a_missing_directory_is_an_error_not_an_empty_set() {
    let out = bin(&[
        "validate",
        "--desired",
        "/nonexistent/mesos-reconciler-specs",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
}
