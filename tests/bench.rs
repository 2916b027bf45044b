//! `mesos-reconciler bench` end to end with the debug binary: a small `converge` run starts its
//! own dev cluster and controller, prints one JSON object with the documented figures, and leaves
//! no process or directory behind. Speed is not checked, only that the figures are sane.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous for a loaded 2-core machine; the run itself takes a few seconds.
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mr-bench-test-{name}-{}", std::process::id()))
}

#[test]
fn converge_prints_one_json_object_with_the_figures() {
    let (stdout_path, stderr_path) = (temp_file("stdout"), temp_file("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args([
            "bench",
            "converge",
            "--specs",
            "20",
            "--runs",
            "1",
            "--json",
            "--timeout",
            "90s",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("the binary starts");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            // Killing the bench leaves its children to kill_on_drop, which needs it alive; a
            // SIGKILLed bench cannot clean up, so this only happens when something hung anyway.
            let _ = child.kill();
            panic!(
                "bench still running after {DEADLINE:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let _ = std::fs::remove_file(&stdout_path);
    let _ = std::fs::remove_file(&stderr_path);
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object per scenario: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(report["scenario"], "converge", "{report}");
    assert_eq!(report["specs"], 20, "{report}");
    assert_eq!(report["runs"], 1, "{report}");
    assert_eq!(report["timed_out"], false, "{report}");
    let figure = |name: &str| {
        report[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    assert!(figure("wall_s") > 0.0, "{report}");
    assert!(figure("wall_s_max") >= figure("wall_s"), "{report}");
    assert!(figure("controller_cpu_s") >= 0.0, "{report}");
    assert!(figure("controller_rss_mib") > 1.0, "{report}");
    assert!(figure("master_cpu_s") >= 0.0, "{report}");
    assert!(figure("cores") >= 1.0, "{report}");
    assert!(figure("tasks_per_s") > 0.0, "{report}");
}
