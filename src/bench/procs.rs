//! The processes and directories of one bench run: a temporary workspace, the dev cluster and the
//! controller as child processes of this binary, and what `/proc` says about their CPU and memory.
//!
//! Every child is started with `kill_on_drop`, and [`Proc`]'s own `Drop` also waits (briefly) for
//! it to be gone, so whichever way a run ends (done, failed, timed out, Ctrl-C drops the future)
//! no process outlives it and the workspace can be removed after them.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::BenchError;
use crate::cli::env;

/// Lines of a child's log printed when a run fails.
const LOG_TAIL_LINES: usize = 20;

/// A temporary directory holding the desired directory, the controller's state and the logs of
/// the children; removed when the bench ends ([`remove_workspaces`]), not when the run does.
///
/// Removing 100,000 spec files right before the next run writes 100,000 new ones makes that run
/// measure ext4's inode allocator: on a file system without a journal, for a few minutes after a
/// file is deleted, ext4 skips its inode when it allocates one (`recently_deleted`), reading an
/// inode table block to find that out, so creating files next to 100,000 recent deletions costs
/// several times more kernel time. A `perf record -a` of one `converge` run at 100,000 that
/// followed another spent 38 % of all samples (over half of the busy ones) in the writer's
/// `recently_deleted` and the lookups under it; the run took 63 s where the first of the series
/// took 16 s.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    pub desired: PathBuf,
    pub state: PathBuf,
}

impl Workspace {
    pub fn create() -> io::Result<Self> {
        let root = std::env::temp_dir().join(format!("mr-bench-{}", uuid::Uuid::new_v4().simple()));
        let desired = root.join("desired");
        let state = root.join("state");
        std::fs::create_dir_all(&desired)?;
        std::fs::create_dir_all(&state)?;
        Ok(Workspace {
            root,
            desired,
            state,
        })
    }

    /// Where a child's stderr goes.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }
}

/// Workspaces whose run is over, removed by [`remove_workspaces`].
static LEFT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

impl Drop for Workspace {
    fn drop(&mut self) {
        LEFT.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(std::mem::take(&mut self.root));
    }
}

/// Removes the workspaces of the runs that are over. Called when the bench ends, so that no run
/// creates its files right after the deletion of another's (see [`Workspace`]).
pub fn remove_workspaces() {
    let left = std::mem::take(
        &mut *LEFT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if left.len() > 1 {
        eprintln!("bench: removing the workspaces of {} runs", left.len());
    }
    for root in left {
        // A process killed a moment ago may still have had a file open; one retry covers it.
        if std::fs::remove_dir_all(&root).is_err() {
            std::thread::sleep(Duration::from_millis(100));
            if let Err(e) = std::fs::remove_dir_all(&root) {
                eprintln!("bench: cannot remove {}: {e}", root.display());
            }
        }
    }
}

/// CPU time and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStats {
    /// User plus system CPU time since the process started, in seconds.
    pub cpu_s: f64,
    /// Resident set size now (VmRSS), MiB.
    pub rss_mib: f64,
    /// Peak resident set size (VmHWM), MiB.
    pub hwm_mib: f64,
}

/// A child process of the bench: the dev cluster or a controller.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Proc, BenchError> {
        let stderr = std::fs::File::create(&log)
            .map_err(|e| BenchError::failed(format!("cannot create {}: {e}", log.display())))?;
        // The children get none of the caller's MESOS_RECONCILER_* settings (a master, a
        // failpoint): only what the command line says, and a quiet log.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MESOS_RECONCILER_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .env(env::LOG, "warn")
            .stdin(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| BenchError::failed(format!("cannot start the {name}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::failed(format!("the {name} exited at once")))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            pid,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What `/proc` says now; `None` once the process is gone.
    pub fn stats(&self) -> Option<ProcStats> {
        proc_stats(self.pid)
    }

    /// An error if the process has exited (with its status and the end of its log).
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::failed(format!(
                "the {} exited ({status}); end of its log:\n{}",
                self.name,
                self.log_tail()
            ))),
            Err(e) => Err(BenchError::failed(format!("the {}: {e}", self.name))),
        }
    }

    /// SIGKILL, then reaps it.
    pub async fn kill(&mut self) -> Result<(), BenchError> {
        self.child
            .kill()
            .await
            .map_err(|e| BenchError::failed(format!("cannot kill the {}: {e}", self.name)))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[from..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `kill_on_drop` only sends the signal; wait a little for the process to be gone, so that
        // the workspace removed next is no longer in use.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.start_kill();
            let end = Instant::now() + Duration::from_secs(2);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `<exe> devcluster` with virtual agents, and the URL it printed.
#[derive(Debug)]
pub struct Cluster {
    pub proc: Proc,
    pub url: String,
    /// Kept open so that the child never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Cluster {
    pub async fn start(
        exe: &Path,
        ws: &Workspace,
        agents: u32,
        agent_resources: &str,
        allocation_interval: &str,
        deadline: Instant,
    ) -> Result<Cluster, BenchError> {
        let mut command = Command::new(exe);
        command
            .args(["devcluster", "--listen", "127.0.0.1:0", "--virtual-agents"])
            .args(["--agents", &agents.to_string()])
            .args(["--agent-resources", agent_resources])
            .args(["--allocation-interval", allocation_interval])
            .stdout(Stdio::piped());
        let mut proc = Proc::spawn("dev cluster", command, ws.log("devcluster"))?;
        let stdout = proc
            .child
            .stdout
            .take()
            .ok_or_else(|| BenchError::failed("the dev cluster has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout_at(deadline.into(), lines.next_line()).await;
        let url = match first {
            Ok(Ok(Some(url))) if url.starts_with("http://") => url.trim().to_owned(),
            Ok(_) => {
                return Err(BenchError::failed(format!(
                    "the dev cluster printed no URL; end of its log:\n{}",
                    proc.log_tail()
                )));
            }
            Err(_) => return Err(BenchError::TimedOut("the dev cluster's URL".into())),
        };
        Ok(Cluster {
            proc,
            url,
            _stdout: lines,
        })
    }
}

/// `<exe> run` against the cluster, with the workspace's directories and any free port for the
/// status server. `log` names its log file (a restarted controller gets a second one).
pub fn start_controller(
    exe: &Path,
    ws: &Workspace,
    master: &str,
    log: &str,
) -> Result<Proc, BenchError> {
    // A leftover address file of a previous controller would point at a dead server.
    let _ = std::fs::remove_file(ws.state.join(crate::controller::STATUS_ADDR_FILE));
    let mut command = Command::new(exe);
    command
        .args(["run", "--master", master, "--listen", "127.0.0.1:0"])
        .arg("--desired")
        .arg(&ws.desired)
        .arg("--state")
        .arg(&ws.state)
        .stdout(Stdio::null());
    Proc::spawn("controller", command, ws.log(log))
}

/// The status server's address, once the controller has written it (the file is written after the
/// server is bound; a partly written file does not parse and is read again).
pub fn status_addr(state: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(state.join(crate::controller::STATUS_ADDR_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS, VmHWM).
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: fields are counted
    // after its closing parenthesis, where field 3 (state) comes first; utime and stime are the
    // 14th and 15th fields.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(ProcStats {
        cpu_s: (utime + stime) as f64 / clock_ticks_per_second(),
        rss_mib: kib("VmRSS:") / 1024.0,
        hwm_mib: kib("VmHWM:") / 1024.0,
    })
}

/// `sysconf(_SC_CLK_TCK)` without libc: the kernel passes it to every process in its auxiliary
/// vector (`AT_CLKTCK`), which `/proc/self/auxv` shows as native-endian word pairs. 100 (what
/// Linux uses everywhere in practice) if that cannot be read.
fn clock_ticks_per_second() -> f64 {
    const AT_CLKTCK: u64 = 17;
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let word = std::mem::size_of::<usize>();
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        auxv.chunks_exact(2 * word)
            .find_map(|pair| {
                let (key, value) = pair.split_at(word);
                (read_word(key) == AT_CLKTCK).then(|| read_word(value))
            })
            .filter(|&ticks| ticks > 0)
            .map_or(100.0, |ticks| ticks as f64)
    })
}

fn read_word(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    if cfg!(target_endian = "little") {
        buf[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buf)
    } else {
        buf[8 - bytes.len()..].copy_from_slice(bytes);
        u64::from_be_bytes(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let stats = proc_stats(std::process::id()).expect("/proc/self is readable");
        assert!(stats.rss_mib > 0.0 && stats.hwm_mib >= stats.rss_mib);
        assert!(stats.cpu_s >= 0.0);
        assert_eq!(clock_ticks_per_second(), 100.0);
    }
}
