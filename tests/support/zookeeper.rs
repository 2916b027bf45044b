//! A real ZooKeeper server for the tests of issue 10 (`cargo test zookeeper`): Debian's
//! `zookeeper` package (installed by `.ci/install-packages`), started as a standalone server on
//! 127.0.0.1 with a free port and its data directory under the test's own directory. It can be
//! stopped (SIGKILL, as a crash) and started again on the same port with the same data, so that
//! sessions survive a restart that is shorter than their timeout, as they do with a real ensemble.
//!
//! Every wait is a condition polled until a deadline: the JVM takes a few seconds to serve on a
//! loaded 2-core machine.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `ruok` after it is started.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// Where Debian's package puts the server's jars and its default configuration.
const JARS: &str = "/usr/share/java/*";
const CONF_DIR: &str = "/etc/zookeeper/conf";

/// One standalone ZooKeeper server. Killed on drop.
#[derive(Debug)]
pub struct ZooKeeper {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl ZooKeeper {
    /// Starts a server with its data and log under `dir` (created), on a free loopback port, and
    /// waits until it answers. `tick` is ZooKeeper's `tickTime`: sessions may last from 2 to 20
    /// ticks, so a short tick lets the tests expire sessions quickly.
    pub fn start(dir: &Path, tick: Duration) -> ZooKeeper {
        fs::create_dir_all(dir.join("data")).expect("create the ZooKeeper data dir");
        let port = free_port();
        let tick_ms = tick.as_millis();
        let cfg = format!(
            "tickTime={tick_ms}\n\
             dataDir={data}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n\
             minSessionTimeout={min}\n\
             maxSessionTimeout={max}\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr\n",
            data = dir.join("data").display(),
            min = tick_ms * 2,
            max = tick_ms * 20,
        );
        fs::write(dir.join("zoo.cfg"), cfg).expect("write zoo.cfg");
        let mut zk = ZooKeeper {
            dir: dir.to_owned(),
            port,
            child: None,
        };
        zk.restart();
        zk
    }

    /// The client connect string, `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zk://127.0.0.1:PORT<path>`, for `--master`, `--zk` and `--ha`.
    pub fn url(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, as a crash) and waits for it to be gone. Sessions are not
    /// closed: they live on in the data directory until they expire.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (after `stop`, or the first time) on the same port and data, and
    /// waits until it answers `ruok`.
    pub fn restart(&mut self) {
        self.stop();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("zookeeper.log"))
            .expect("open the ZooKeeper log");
        let child = Command::new("java")
            .args([
                "-Xmx192m",
                "-XX:+UseSerialGC",
                "-Dzookeeper.root.logger=INFO,CONSOLE",
                "-cp",
                &format!("{CONF_DIR}:{JARS}"),
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect(
                "start ZooKeeper with `java` (is Debian's `zookeeper` package installed? \
                 .ci/install-packages installs it)",
            );
        self.child = Some(child);
        let end = Instant::now() + START_DEADLINE;
        loop {
            if self.answers_ruok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "ZooKeeper exited with {status} before serving; its log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < end,
                "ZooKeeper did not answer on 127.0.0.1:{} within {START_DEADLINE:?}; its log:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server answers the `ruok` four-letter command with `imok`.
    pub fn answers_ruok(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        if conn.write_all(b"ruok").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer == "imok"
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
