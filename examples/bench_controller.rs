//! Benchmark: the controller at scale against the dev cluster with virtual agents.
//!
//! Prints:
//! - the time from 1,000 spec files written to all 1,000 tasks TASK_RUNNING in the master;
//! - the time from one more file written to its task TASK_RUNNING (median of 5);
//! - after `kill -9` of the controller with those tasks running, and a restart: the time until it
//!   reports itself reconciled (`/readyz`), and how many tasks it launched (must be 0).
//!
//! Both the dev cluster and the controller run as their own processes (the release binary).
//! Run: `cargo build --release && cargo run --release --example bench_controller -- [--specs 1000]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let specs: usize = args
        .iter()
        .position(|a| a == "--specs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let bin = std::env::var("MESOS_RECONCILER_BIN")
        .unwrap_or_else(|_| "target/release/mesos-reconciler".to_owned());
    let work = std::env::temp_dir().join(format!("mr-bench-{}", uuid::Uuid::new_v4().simple()));
    let desired = work.join("desired");
    let state = work.join("state");
    std::fs::create_dir_all(&desired)?;

    let mut cluster = Command::new(&bin)
        .args([
            "devcluster",
            "--listen",
            "127.0.0.1:0",
            "--virtual-agents",
            "--agents",
            "10",
            "--agent-resources",
            "cpus:1000;mem:1000000;disk:1000000;ports:[31000-32000]",
            "--allocation-interval",
            "100ms",
        ])
        .env("MESOS_RECONCILER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {bin} (run `cargo build --release` first): {e}"))?;
    let stdout = cluster.stdout.take().ok_or("no stdout")?;
    let master = BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .ok_or("no url")?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    println!("dev cluster at {master}: 10 virtual agents; {specs} specs");

    let mut controller = start_controller(&bin, &master, &desired, &state)?;
    let status = status_url(&state).await?;
    wait_ready(&http, &status, Duration::from_secs(60)).await?;

    let t0 = Instant::now();
    for i in 0..specs {
        write_spec(&desired, &format!("svc-{i:04}"))?;
    }
    wait_running(&http, &master, specs, Duration::from_secs(600)).await?;
    let all = t0.elapsed();
    println!(
        "{specs} spec files written -> all TASK_RUNNING: {:.2} s ({:.0} tasks/s)",
        all.as_secs_f64(),
        specs as f64 / all.as_secs_f64()
    );

    let mut singles = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        write_spec(&desired, &format!("single-{i}"))?;
        wait_running(&http, &master, specs + i + 1, Duration::from_secs(60)).await?;
        singles.push(t.elapsed());
    }
    singles.sort();
    println!(
        "one file written -> its task TASK_RUNNING: median {:.0} ms (min {:.0}, max {:.0})",
        singles[2].as_secs_f64() * 1000.0,
        singles[0].as_secs_f64() * 1000.0,
        singles[4].as_secs_f64() * 1000.0
    );

    let total = specs + 5;
    controller.kill().await?; // SIGKILL
    let _ = std::fs::remove_file(state.join("status-addr"));
    let t = Instant::now();
    let mut controller = start_controller(&bin, &master, &desired, &state)?;
    let status = status_url(&state).await?;
    wait_ready(&http, &status, Duration::from_secs(120)).await?;
    let reconciled = t.elapsed();
    // A few more passes, then read what it launched since the restart.
    let passes = snapshot(&http, &status).await?["counters"]["passes"]
        .as_u64()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let snap = loop {
        let s = snapshot(&http, &status).await?;
        if s["counters"]["passes"].as_u64().unwrap_or(0) >= passes + 3 || Instant::now() > deadline
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let running = running_tasks(&http, &master).await?;
    println!(
        "restart with {total} tasks running (after kill -9): reconciled in {:.2} s; launches after restart: {}; tasks running in the master: {running}",
        reconciled.as_secs_f64(),
        snap["counters"]["launches"]
    );
    controller.kill().await?;
    cluster.kill().await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn start_controller(bin: &str, master: &str, desired: &Path, state: &Path) -> Result<Child, Error> {
    Ok(Command::new(bin)
        .args(["run", "--master", master, "--listen", "127.0.0.1:0"])
        .arg("--desired")
        .arg(desired)
        .arg("--state")
        .arg(state)
        .env("MESOS_RECONCILER_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?)
}

fn write_spec(dir: &Path, name: &str) -> Result<(), Error> {
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    std::fs::write(
        &tmp,
        "command = \"sleep 3600\"\ncpus = 0.01\nmem = 1\nrestart = \"always\"\n",
    )?;
    std::fs::rename(tmp, dir.join(format!("{name}.toml")))?;
    Ok(())
}

async fn status_url(state: &Path) -> Result<String, Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = std::fs::read_to_string(state.join("status-addr")) {
            return Ok(format!("http://{}", addr.trim()));
        }
        if Instant::now() > deadline {
            return Err("the controller never wrote its status address".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn snapshot(http: &reqwest::Client, status: &str) -> Result<serde_json::Value, Error> {
    let body = http
        .get(format!("{status}/api/v1/status"))
        .send()
        .await?
        .bytes()
        .await?;
    Ok(serde_json::from_slice(&body)?)
}

async fn wait_ready(http: &reqwest::Client, status: &str, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(format!("{status}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the controller never became ready".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn running_tasks(http: &reqwest::Client, master: &str) -> Result<usize, Error> {
    let body = http
        .get(format!("{master}/master/state"))
        .send()
        .await?
        .bytes()
        .await?;
    let state: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tasks"].as_array().into_iter().flatten())
        .filter(|t| t["state"] == "TASK_RUNNING")
        .count())
}

async fn wait_running(
    http: &reqwest::Client,
    master: &str,
    n: usize,
    limit: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    loop {
        if running_tasks(http, master).await? >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("fewer than {n} tasks running after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
