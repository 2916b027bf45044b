//! `deploy/`: the systemd units pass `systemd-analyze verify` (and stay well hardened by
//! `systemd-analyze security`), the sysusers file creates the users they run as, and every
//! `MESOS_RECONCILER_*` variable the binary reads is documented in an environment file.
//!
//! `systemd-analyze verify` checks that the ExecStart binary exists, and the units name the
//! installed path (/usr/local/bin/mesos-reconciler). So a copy of each unit, with that path
//! replaced by the binary cargo just built, is what gets verified; nothing else is changed.
//! Without systemd-analyze (a developer machine without systemd) those tests say so and pass;
//! `.ci/run` installs Debian's `systemd` package, so CI always runs them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 2] = ["mesos-reconciler.service", "mesos-reconciler-sync.service"];
const INSTALLED_BINARY: &str = "/usr/local/bin/mesos-reconciler";
const ENV_FILES: [&str; 2] = ["mesos-reconciler.env", "sync.env"];

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mesos-reconciler-deploy-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether `program` runs; if not, says which test is skipped and why.
fn available(program: &str, test: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!(
                "SKIPPED {test}: `{program}` is not installed (Debian: apt-get install systemd; .ci/run installs it)"
            );
            false
        }
    }
}

/// Copies of the units, their ExecStart binary replaced by the one cargo built.
fn units_for_verify() -> (PathBuf, Vec<PathBuf>) {
    let dir = scratch("units");
    let built = env!("CARGO_BIN_EXE_mesos-reconciler");
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = fs::read_to_string(deploy(unit)).unwrap();
        assert!(
            text.contains(&format!("ExecStart={INSTALLED_BINARY} ")),
            "{unit} starts {INSTALLED_BINARY}"
        );
        let path = dir.join(unit);
        fs::write(&path, text.replace(INSTALLED_BINARY, built)).unwrap();
        paths.push(path);
    }
    (dir, paths)
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    if !available(
        "systemd-analyze",
        "systemd_analyze_verify_accepts_the_units",
    ) {
        return;
    }
    let (dir, units) = units_for_verify();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(&dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    // verify only warns about unknown keys and bad values (exit 0): any output is a problem.
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned:\n{said}"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_units_are_hardened() {
    if !available("systemd-analyze", "the_units_are_hardened") {
        return;
    }
    let (dir, units) = units_for_verify();
    for unit in &units {
        // Exposure 0.0 (locked down) to 10.0; 2.0 and below is what systemd calls "OK".
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(unit)
            .current_dir(&dir)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if said.contains("unrecognized option") {
            eprintln!("SKIPPED the_units_are_hardened: this systemd-analyze has no --offline");
            return;
        }
        let overall = said
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or("(no overall line)");
        eprintln!("{}: {overall}", unit.display());
        assert!(
            out.status.success(),
            "{} is exposed above 2.0:\n{said}",
            unit.display()
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sysusers_creates_the_service_users_in_one_group() {
    if !available(
        "systemd-sysusers",
        "sysusers_creates_the_service_users_in_one_group",
    ) {
        return;
    }
    let root = scratch("sysusers");
    fs::create_dir_all(root.join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(deploy("mesos-reconciler.sysusers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    let gid = group
        .lines()
        .find_map(|l| l.strip_prefix("mesos-reconciler:x:"))
        .and_then(|rest| rest.split(':').next())
        .expect("the group exists")
        .to_owned();
    for (user, home) in [
        ("mesos-reconciler", "/var/lib/mesos-reconciler"),
        ("mesos-reconciler-sync", "/var/lib/mesos-reconciler-sync"),
    ] {
        let fields: Vec<&str> = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("{user} in {passwd}"))
            .split(':')
            .collect();
        assert_eq!(fields[3], gid, "{user} is in the mesos-reconciler group");
        assert_eq!(fields[5], home);
    }
    // The units run as these users, in that group.
    for unit in UNITS {
        let text = fs::read_to_string(deploy(unit)).unwrap();
        assert!(text.contains("\nGroup=mesos-reconciler\n"), "{unit}");
    }
    fs::remove_dir_all(root).unwrap();
}

/// Every `"MESOS_RECONCILER_..."` string in src/cli.rs: the variables clap reads.
fn variables_in_cli() -> BTreeSet<String> {
    let source =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli.rs")).unwrap();
    source
        .split('"')
        .filter(|s| {
            s.starts_with("MESOS_RECONCILER_")
                && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

/// `NAME` for every line `NAME=...` or `#NAME=...` of the environment files.
fn variables_documented() -> BTreeSet<String> {
    ENV_FILES
        .iter()
        .flat_map(|f| {
            fs::read_to_string(deploy(f))
                .unwrap()
                .lines()
                .filter_map(|l| {
                    let l = l.trim_start_matches('#');
                    let (name, _) = l.split_once('=')?;
                    name.starts_with("MESOS_RECONCILER_")
                        .then(|| name.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_environment_variable_is_documented_in_an_environment_file() {
    let read = variables_in_cli();
    assert!(
        read.len() >= 20,
        "the scan of src/cli.rs found too few variables: {read:?}"
    );
    let documented = variables_documented();
    let missing: Vec<&String> = read.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "not documented in deploy/{{{}}}: {missing:?}",
        ENV_FILES.join(",")
    );
    let stale: Vec<&String> = documented.difference(&read).collect();
    assert!(
        stale.is_empty(),
        "documented but not read by the binary: {stale:?}"
    );
}

#[test]
fn the_units_read_the_environment_files_the_readme_installs() {
    let readme = fs::read_to_string(deploy("README.md")).unwrap();
    for (unit, env) in [
        ("mesos-reconciler.service", "mesos-reconciler.env"),
        ("mesos-reconciler-sync.service", "sync.env"),
    ] {
        let text = fs::read_to_string(deploy(unit)).unwrap();
        let line = format!("EnvironmentFile=/etc/mesos-reconciler/{env}");
        assert!(text.contains(&line), "{unit} has {line}");
        assert!(
            readme.contains(&format!("/etc/mesos-reconciler/{env}")),
            "deploy/README.md installs {env}"
        );
    }
    // The controller reads what the sync publishes.
    let controller = fs::read_to_string(deploy("mesos-reconciler.service")).unwrap();
    let sync = fs::read_to_string(deploy("mesos-reconciler-sync.service")).unwrap();
    assert!(sync.contains("MESOS_RECONCILER_SYNC_ROOT=/var/lib/mesos-reconciler-sync\n"));
    assert!(
        controller.contains("MESOS_RECONCILER_DESIRED=/var/lib/mesos-reconciler-sync/current\n")
    );
    assert!(
        sync.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reload = fetch now"
    );
    assert!(
        !controller.contains("\nExecReload="),
        "the controller has no reload"
    );
}
