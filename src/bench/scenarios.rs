//! The controller scenarios. Each gets a fresh [`Env`] (a dev cluster, no controller yet) and
//! returns what it measured. `wall_s` is always the measured phase: until all tasks run
//! (`converge`, `cold`), until `/readyz` (`restart`, `recover`), all samples (`latency`, `status`), the
//! window (`idle`). `controller_*` and `master_*` are the CPU time each process spent in that
//! phase and its memory at its end.

use std::time::{Duration, Instant};

use super::probe::{Source, live_and_duplicates};
use super::report::Figures;
use super::{BenchError, Env, SPEC_PREFIX, write_specs};

/// Files written one by one in `latency`, unless `--samples` says otherwise.
pub const LATENCY_SAMPLES: u32 = 200;
/// Requests per endpoint in `status`, unless `--samples` says otherwise.
const STATUS_SAMPLES: u32 = 20;
/// How often the master is asked while waiting for one task.
const POLL_ONE: Duration = Duration::from_millis(5);
/// How often the controller's metrics are read while it settles after a restart.
const POLL_SETTLE: Duration = Duration::from_millis(100);
/// Passes the restarted controller runs after `/readyz` before its counters are read: time to
/// launch or kill anything it would.
const SETTLE_PASSES: f64 = 2.0;
/// How long to wait for those passes; a controller with nothing to do may run none.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// How often memory is sampled in `idle`.
const IDLE_SAMPLE: Duration = Duration::from_secs(1);

/// N files written as fast as possible while the controller runs, until all N are RUNNING.
/// Writing that many at once overflows the controller's inotify queue on purpose.
pub async fn converge(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    let n = env.specs();
    env.start_controller("controller").await?;
    env.wait_ready().await?;
    let mark = env.mark();
    let started = Instant::now();
    let dir = env.ws.desired.clone();
    let writer = tokio::task::spawn_blocking(move || {
        write_specs(&dir, SPEC_PREFIX, 0..n).map(|()| started.elapsed())
    });
    env.wait_running(n).await?;
    let wall = started.elapsed();
    let write = writer
        .await
        .map_err(|e| BenchError::failed(format!("the spec writer: {e}")))??;
    figures.secs("wall_s", wall);
    figures.secs("write_s", write);
    figures.set("tasks_per_s", n as f64 / wall.as_secs_f64());
    env.finish(mark, &mut figures);
    Ok(figures)
}

/// N files present before the controller starts, until all N are RUNNING.
pub async fn cold(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    let n = env.specs();
    env.write_specs(n).await?;
    let mark = env.mark();
    let started = Instant::now();
    env.start_controller("controller").await?;
    env.wait_ready().await?;
    let ready = started.elapsed();
    env.wait_running(n).await?;
    let wall = started.elapsed();
    figures.secs("wall_s", wall);
    figures.secs("ready_s", ready);
    figures.set("tasks_per_s", n as f64 / wall.as_secs_f64());
    env.finish(mark, &mut figures);
    Ok(figures)
}

/// With N running, one file written at a time: until its task appears in the master (the ACCEPT
/// that launched it arrived), and until it is RUNNING.
pub async fn latency(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.steady(&mut figures).await?;
    settle(env, &mut figures).await?;
    let samples = env.options.samples.unwrap_or(LATENCY_SAMPLES);
    let mut accepted = Vec::new();
    let mut running = Vec::new();
    let mark = env.mark();
    let started = Instant::now();
    for i in 0..samples as usize {
        // With the gauges, the new task is the one more launched (then running) task than
        // before; with the state document, it is the task whose id starts with the spec's.
        let before = match env.master.source() {
            Source::Metrics => Some(env.master.counts().await?),
            _ => None,
        };
        let name = format!("lat-{i:06}");
        let task_prefix = format!("{name}.");
        let sample_started = Instant::now();
        write_specs(&env.ws.desired, "lat", i..i + 1)?;
        let mut accept_time = None;
        loop {
            let (in_master, is_running) = match before {
                Some(before) => {
                    let now = env.master.counts().await?;
                    (now.launched > before.launched, now.running > before.running)
                }
                None => {
                    let tasks = env.master.state_tasks().await?;
                    let task = tasks.iter().find(|t| t.id.starts_with(&task_prefix));
                    (
                        task.is_some(),
                        task.is_some_and(|t| t.state == "TASK_RUNNING"),
                    )
                }
            };
            if in_master && accept_time.is_none() {
                accept_time = Some(sample_started.elapsed());
            }
            if is_running {
                let done = sample_started.elapsed();
                accepted.push(accept_time.unwrap_or(done));
                running.push(done);
                break;
            }
            let pause = env.master.interval(POLL_ONE);
            let seen = accept_time.is_some();
            env.tick(pause, || {
                format!(
                    "sample {i}: the task of {name} TASK_RUNNING (in the master already: {seen})"
                )
            })
            .await?;
        }
    }
    figures.secs("wall_s", started.elapsed());
    figures.set("samples", f64::from(samples));
    figures.percentiles_ms(
        ["accept_p50_ms", "accept_p99_ms", "accept_max_ms"],
        &accepted,
    );
    figures.percentiles_ms(
        ["running_p50_ms", "running_p99_ms", "running_max_ms"],
        &running,
    );
    env.finish(mark, &mut figures);
    Ok(figures)
}

/// With N running, `kill -9` of the controller and a restart: until `/readyz` answers 200, then
/// what the new process launched and killed (its own counters, so only since the restart) once
/// it has run a few passes, and the master's live tasks before and after. Twice per run: right
/// after the master shows N running (`wall_s`, the burst's tail unacknowledged), then again from
/// the steady state (`steady_wall_s`).
pub async fn restart(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.steady(&mut figures).await?;
    let (before, _) = live_and_duplicates(&env.master.state_tasks().await?);
    let burst = kill_and_restart(env, "controller-restarted", "restart", before).await?;
    figures.extend(&burst);
    // The kill above came right after the master showed N running, with the burst's last status
    // updates still unacknowledged (the new process takes them over). A second kill, from the
    // steady state, measures the restart of a controller that was simply running.
    settle(env, &mut Figures::default()).await?;
    let steady = kill_and_restart(
        env,
        "controller-restarted-steady",
        "restart (steady)",
        before,
    )
    .await?;
    for (name, as_steady) in [
        ("wall_s", "steady_wall_s"),
        ("controller_cpu_s", "steady_controller_cpu_s"),
        ("controller_rss_mib", "steady_controller_rss_mib"),
        ("launches_after_restart", "steady_launches_after_restart"),
        ("kills_after_restart", "steady_kills_after_restart"),
        ("duplicate_tasks", "steady_duplicate_tasks"),
    ] {
        if let Some(value) = steady.get(name) {
            figures.set(as_steady, value);
        }
    }
    Ok(figures)
}

/// `kill -9` of the controller and a start with the same state directory: `wall_s` until
/// `/readyz` answers 200, the new process's CPU and memory, then [`after_restart`].
async fn kill_and_restart(
    env: &mut Env,
    log: &str,
    scenario: &str,
    before: u64,
) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.kill_controller().await?;
    let mark = env.mark();
    let started = Instant::now();
    env.start_controller(log).await?;
    env.wait_ready().await?;
    figures.secs("wall_s", started.elapsed());
    env.finish(mark, &mut figures);
    after_restart(env, &mut figures, before, scenario).await?;
    Ok(figures)
}

/// With N running, `kill -9` of the controller, its state directory deleted, and a start: until
/// `/readyz` answers 200 (the framework found on the master, failed over, its N tasks read from
/// the master and adopted), then as in `restart`. The master's frameworks after it must be one.
pub async fn recover(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.steady(&mut figures).await?;
    let (before, _) = live_and_duplicates(&env.master.state_tasks().await?);
    env.kill_controller().await?;
    // A controller without a framework id refuses a framework still connected, so the start
    // waits until the master has seen the killed one's stream close (not part of the figure).
    let disconnect = Instant::now();
    loop {
        let frameworks = env.master.frameworks().await?;
        if frameworks.iter().all(|f| !f.active) {
            break;
        }
        env.tick(POLL_SETTLE, || {
            "the master to see the killed controller disconnected".into()
        })
        .await?;
    }
    figures.secs("disconnect_s", disconnect.elapsed());
    std::fs::remove_dir_all(&env.ws.state)?;
    std::fs::create_dir_all(&env.ws.state)?;
    let mark = env.mark();
    let started = Instant::now();
    env.start_controller("controller-recovered").await?;
    env.wait_ready().await?;
    figures.secs("wall_s", started.elapsed());
    env.finish(mark, &mut figures);
    after_restart(env, &mut figures, before, "recover").await?;
    let frameworks = env.master.frameworks().await?;
    figures.set("frameworks_after", frameworks.len() as f64);
    if frameworks.len() != 1 {
        let ids: Vec<&str> = frameworks.iter().map(|f| f.id.as_str()).collect();
        eprintln!(
            "bench recover: WARNING: the master has {} frameworks after the recovery: {ids:?}",
            frameworks.len()
        );
    }
    Ok(figures)
}

/// After a restart (`/readyz` answered): waits for a few passes, then records what the new process
/// launched and killed and the master's live tasks and duplicates.
async fn after_restart(
    env: &mut Env,
    figures: &mut Figures,
    before: u64,
    scenario: &str,
) -> Result<(), BenchError> {
    let settle_started = Instant::now();
    let passes_at_ready = passes(&env.status()?.metrics().await?);
    let counters = loop {
        let metrics = env.status()?.metrics().await?;
        if passes(&metrics) >= passes_at_ready + SETTLE_PASSES
            || settle_started.elapsed() >= SETTLE_LIMIT
        {
            break metrics;
        }
        env.tick(POLL_SETTLE, || {
            "the restarted controller's passes after /readyz".into()
        })
        .await?;
    };
    figures.secs("settle_s", settle_started.elapsed());
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0.0);
    figures.set("launches_after_restart", counter("launches_total"));
    figures.set("kills_after_restart", counter("kills_total"));
    let (after, duplicates) = live_and_duplicates(&env.master.state_tasks().await?);
    figures.set("master_tasks_before", before as f64);
    figures.set("master_tasks_after", after as f64);
    figures.set("duplicate_tasks", duplicates as f64);
    if before != after || duplicates > 0 {
        eprintln!(
            "bench {scenario}: WARNING: the master had {before} live tasks before the restart and {after} after ({duplicates} duplicates)"
        );
    }
    Ok(())
}

/// With N running, a window of `--idle-secs` in which nothing changes: CPU as a percentage of one
/// core, and memory (the peak sampled every second, and at the end).
pub async fn idle(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.steady(&mut figures).await?;
    settle(env, &mut figures).await?;
    let window = env.options.idle;
    let mark = env.mark();
    let started = Instant::now();
    let mut peak_rss: f64 = 0.0;
    while started.elapsed() < window {
        if let Some(stats) = env.controller.as_ref().and_then(|c| c.stats()) {
            peak_rss = peak_rss.max(stats.rss_mib);
        }
        let left = window.saturating_sub(started.elapsed());
        env.tick(IDLE_SAMPLE.min(left), || {
            "the end of the idle window".into()
        })
        .await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    figures.set("wall_s", elapsed);
    env.finish(mark, &mut figures);
    let percent = |cpu: Option<f64>| cpu.unwrap_or(0.0) / elapsed * 100.0;
    figures.set(
        "controller_cpu_pct",
        percent(figures.get("controller_cpu_s")),
    );
    figures.set("master_cpu_pct", percent(figures.get("master_cpu_s")));
    figures.set(
        "controller_rss_peak_mib",
        peak_rss.max(figures.get("controller_rss_mib").unwrap_or(0.0)),
    );
    Ok(figures)
}

/// With N running, the response times of the status server's JSON, page and metrics, one
/// request at a time, whole body read.
pub async fn status(env: &mut Env) -> Result<Figures, BenchError> {
    let mut figures = Figures::default();
    env.steady(&mut figures).await?;
    settle(env, &mut figures).await?;
    let samples = env.options.samples.unwrap_or(STATUS_SAMPLES);
    // The first request of each comes after minutes with no reader of the rows: its time (the
    // max) includes what the controller needs to publish them, unless a partial snapshot has the
    // page. The filtered one follows the others, as a reader's next click would.
    let endpoints: [(&str, [&'static str; 3]); 4] = [
        (
            "/api/v1/status",
            ["api_status_p50_ms", "api_status_max_ms", "api_status_bytes"],
        ),
        ("/", ["page_p50_ms", "page_max_ms", "page_bytes"]),
        (
            "/metrics",
            ["metrics_p50_ms", "metrics_max_ms", "metrics_bytes"],
        ),
        (
            "/api/v1/status?state=healthy&order=problems&limit=100",
            ["filtered_p50_ms", "filtered_max_ms", "filtered_bytes"],
        ),
    ];
    let mark = env.mark();
    let started = Instant::now();
    for (path, [p50, max, bytes]) in endpoints {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..samples {
            let (took, body) = env.status()?.get(path).await?;
            times.push(took);
            size = body.len();
        }
        let mut scratch = Figures::default();
        scratch.percentiles_ms(["p50", "p99", "max"], &times);
        figures.set(p50, scratch.get("p50").unwrap_or(0.0));
        figures.set(max, scratch.get("max").unwrap_or(0.0));
        figures.set(bytes, size as f64);
    }
    figures.secs("wall_s", started.elapsed());
    figures.set("samples", f64::from(samples));
    env.finish(mark, &mut figures);
    Ok(figures)
}

/// After the master shows all N running, the controller still has the burst's tail to take: the
/// last status updates and their acknowledgements. `idle`, `latency` and `status` measure "with N
/// running", so they start from the steady state: it starts when the controller
/// itself counts N running and then spends under [`QUIET_CPU`] of a core for a second; the wait
/// (`settle_s`, at most [`SETTLE_LIMIT`]) is reported, never hidden.
async fn settle(env: &mut Env, figures: &mut Figures) -> Result<(), BenchError> {
    let started = Instant::now();
    let n = env.specs() as f64;
    loop {
        let running = env.status()?.metrics().await?.get("running_tasks").copied();
        if running.is_some_and(|r| r >= n) || started.elapsed() >= SETTLE_LIMIT {
            break;
        }
        env.tick(POLL_SETTLE, || {
            format!("the controller to count {n} tasks running")
        })
        .await?;
    }
    let cpu = |env: &Env| {
        env.controller
            .as_ref()
            .and_then(|c| c.stats())
            .map(|s| s.cpu_s)
    };
    loop {
        let before = cpu(env);
        let tick = Instant::now();
        env.tick(Duration::from_secs(1), || {
            "the controller to go quiet".into()
        })
        .await?;
        let used = match (before, cpu(env)) {
            (Some(a), Some(b)) => (b - a) / tick.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        if used < QUIET_CPU || started.elapsed() >= SETTLE_LIMIT {
            break;
        }
    }
    figures.secs("settle_s", started.elapsed());
    Ok(())
}

/// A controller using less than this share of a core is past the burst (the steady state of a
/// large one is well under it; its periodic re-scan is the only spike).
const QUIET_CPU: f64 = 0.05;

fn passes(metrics: &std::collections::BTreeMap<String, f64>) -> f64 {
    metrics.get("passes_total").copied().unwrap_or(0.0)
}
