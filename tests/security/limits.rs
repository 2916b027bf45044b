//! Hostile desired trees: too many files, too many bytes, too deep, ids too long or badly made,
//! symlinks out of the directory. Each is refused with a message that names it, and none of them
//! is ever read as "fewer specs" (which would kill tasks).

use std::path::Path;

use mesos_reconciler::spec::dir::{DirCache, scan_dir_with};
use mesos_reconciler::spec::{DirError, Limits, SpecId, SpecPolicy, load_dir_with};

use super::doors::scratch;

const SPEC: &str = "command = \"sleep 1000\"\n";

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn policy(limits: Limits) -> SpecPolicy {
    SpecPolicy {
        limits,
        ..SpecPolicy::default()
    }
}

#[test]
fn more_spec_files_than_the_maximum_refuse_the_whole_directory() {
    let root = scratch("many");
    for i in 0..5 {
        write(&root, &format!("s{i}.toml"), SPEC);
    }
    // Ignored files do not count.
    write(&root, "_disabled.toml", SPEC);
    write(&root, "README.md", "notes");
    let at_most = |max_files| {
        policy(Limits {
            max_files,
            ..Limits::DEFAULT
        })
    };
    assert_eq!(load_dir_with(&root, &at_most(5)).unwrap().specs.len(), 5);
    let err = load_dir_with(&root, &at_most(4)).unwrap_err();
    assert!(
        matches!(err, DirError::TooManyFiles { max: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("holds more than 4 spec files")
            && err.to_string().contains("--max-spec-files"),
        "{err}"
    );
    // The controller's incremental scan refuses too, and leaves its cache as it was.
    let mut cache = DirCache::default();
    assert!(scan_dir_with(&root, &mut cache, &at_most(4)).is_err());
    assert!(cache.is_empty());
    assert_eq!(Limits::DEFAULT.max_files, 200_000);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_desired_tree_larger_than_the_total_is_refused() {
    let root = scratch("large");
    let padding = format!("{SPEC}# {}\n", "x".repeat(4000));
    for i in 0..4 {
        write(&root, &format!("s{i}.toml"), &padding);
    }
    let limits = Limits {
        max_total_bytes: 10_000,
        ..Limits::DEFAULT
    };
    let err = load_dir_with(&root, &policy(limits)).unwrap_err();
    assert!(matches!(err, DirError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("add up to more than"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn directories_nested_deeper_than_the_limit_are_refused() {
    let root = scratch("deep");
    write(&root, "a/b/c/web.toml", SPEC);
    let limits = |max_depth| Limits {
        max_depth,
        ..Limits::DEFAULT
    };
    assert_eq!(
        load_dir_with(&root, &policy(limits(3)))
            .unwrap()
            .specs
            .len(),
        1
    );
    let err = load_dir_with(&root, &policy(limits(2))).unwrap_err();
    assert!(matches!(err, DirError::TooDeep { max: 2, .. }), "{err:?}");
    assert!(
        err.to_string().contains("a/b/c is nested more than 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn spec_ids_are_bounded_in_length_and_characters() {
    let long = "a".repeat(129);
    let err = SpecId::new(long.clone()).unwrap_err().to_string();
    assert!(err.contains("longer than 128 characters"), "{err}");
    assert!(
        !err.contains(&long),
        "the message quotes a prefix, not all of it: {err}"
    );
    assert!(SpecId::new("a".repeat(128)).is_ok());
    for bad in ["Web", "a b", "../etc", "a//b", "-x", "é", "a\u{0}b"] {
        assert!(SpecId::new(bad).is_err(), "{bad:?} was accepted");
    }

    let root = scratch("ids");
    write(&root, &format!("{long}.toml"), SPEC);
    let snapshot = load_dir_with(&root, &SpecPolicy::default()).unwrap();
    let error = snapshot
        .errors
        .values()
        .next()
        .expect("an error for the long name");
    assert!(
        error.to_string().contains("invalid spec file name"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn symlinks_that_leave_the_desired_directory_are_not_read() {
    let root = scratch("links");
    let outside = scratch("outside");
    write(&outside, "secret.toml", "command = \"cat /etc/shadow\"\n");
    write(&outside, "team/web.toml", SPEC);
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.toml")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.toml"), root.join("x.toml")).unwrap();
    std::os::unix::fs::symlink(outside.join("team"), root.join("team")).unwrap();
    // A link that stays inside (a ConfigMap's `..data`) is followed as before.
    write(&root, "..data/web.toml", SPEC);
    std::os::unix::fs::symlink("..data/web.toml", root.join("web.toml")).unwrap();

    let snapshot = load_dir_with(&root, &SpecPolicy::default()).unwrap();
    let ids: Vec<&str> = snapshot.specs.keys().map(SpecId::as_str).collect();
    assert_eq!(ids, ["web"]);
    for key in ["passwd", "x", "team/"] {
        let error = snapshot
            .errors
            .get(key)
            .unwrap_or_else(|| panic!("no error for {key}: {:?}", snapshot.errors));
        let text = error.to_string();
        assert!(
            text.contains("outside the desired directory"),
            "{key}: {text}"
        );
    }
    assert!(
        snapshot.errors["passwd"]
            .to_string()
            .contains("symlink to /etc/passwd"),
        "{}",
        snapshot.errors["passwd"]
    );
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&outside);
}

/// The controller as it runs: a running spec edited to a user that is not allowed, then a
/// directory over its file limit, then a symlink out of it. Each is reported, and the task that
/// runs goes on running (the previous valid version stays in force).
#[tokio::test]
async fn refused_specs_and_directories_never_kill_running_tasks() {
    use super::proc::{self, DEADLINE, Fixture, Spawn, wait_for};
    let cluster = proc::start_cluster(1, "cpus:4;mem:4096;ports:[31000-31100]").await;
    let mut fixture = Fixture::new("refusals", &cluster.url());
    fixture.write_spec("web", &proc::service_spec(1));
    // Virtual agents: the user is only a name here.
    let mut ctl = fixture.spawn_with(Spawn {
        args: &[
            "--user",
            "nobody",
            "--allowed-users",
            "nobody,www-data",
            "--max-spec-files",
            "3",
        ],
        ..Spawn::default()
    });
    ctl.status_url().await;
    let specs = [("web".to_owned(), 1)].into_iter().collect();
    let (frameworks, _) = proc::wait_converged(&cluster, &ctl, &specs, DEADLINE).await;
    let running = proc::running_ids(&frameworks);
    assert_eq!(running.len(), 1);

    let still_running = || async {
        let now = proc::running_ids(&proc::frameworks(&cluster).await);
        assert_eq!(now, running, "the running task was touched");
    };

    // 1. The spec asks for a user that is not allowed.
    fixture.write_spec(
        "web",
        &format!("{}user = \"root\"\n", proc::service_spec(1)),
    );
    let error = wait_for("the spec to be invalid", DEADLINE, || async {
        let s = ctl.status().await?;
        let spec = s.specs.iter().find(|s| s.id == "web").ok_or("no web")?;
        spec.error
            .clone()
            .ok_or_else(|| "web has no error yet".to_owned())
    })
    .await;
    assert_eq!((error.field.as_str(), error.line), ("user", 6), "{error:?}");
    assert!(
        error.message.contains("user `root` is not allowed"),
        "{error:?}"
    );
    still_running().await;

    // 2. More files than --max-spec-files: the directory is refused as a whole.
    for i in 0..3 {
        fixture.write_spec(&format!("extra-{i}"), &proc::service_spec(1));
    }
    let why = wait_for("the directory to be refused", DEADLINE, || async {
        let s = ctl.status().await?;
        s.desired_error
            .clone()
            .ok_or_else(|| "no desired_error yet".to_owned())
    })
    .await;
    assert!(why.contains("holds more than 3 spec files"), "{why}");
    let s = ctl.status().await.unwrap();
    assert!(
        !s.specs.iter().any(|s| s.id.starts_with("extra-")),
        "nothing of a refused directory is applied"
    );
    still_running().await;

    // 3. Back under the limit, the spec file becomes a link out of the directory.
    for i in 0..3 {
        std::fs::remove_file(fixture.desired.join(format!("extra-{i}.toml"))).unwrap();
    }
    std::fs::remove_file(fixture.desired.join("web.toml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fixture.desired.join("web.toml")).unwrap();
    let error = wait_for("the link to be refused", DEADLINE, || async {
        let s = ctl.status().await?;
        let spec = s.specs.iter().find(|s| s.id == "web").ok_or("no web")?;
        match &spec.error {
            Some(e) if e.message.contains("outside the desired directory") => Ok(e.clone()),
            other => Err(format!("web's error: {other:?}")),
        }
    })
    .await;
    assert!(error.message.contains("/etc/passwd"), "{error:?}");
    still_running().await;
    ctl.sigterm();
    ctl.wait_exit(DEADLINE).await;
}
