//! A real TLS handshake: the test makes a CA and server certificates (`rcgen`), the dev master
//! serves its scheduler endpoint over HTTPS (`devcluster --tls-cert/--tls-key`), and the
//! controller with `--ca-bundle` subscribes and launches. A wrong CA, an expired certificate and a
//! wrong host name are each refused, with a message that says which.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesos_reconciler::devcluster::master::tls::server_config;
use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};
use mesos_reconciler::mesos::client::{ClientConfig, RetryPolicy, SchedulerClient};
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::call;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::AsyncBufReadExt;

use super::doors::scratch;
use super::proc::{self, DEADLINE, Fixture, Spawn};

/// A CA, and the PEM files it signed, in one directory.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(label: &str) -> Pki {
        let dir = scratch(label);
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{label} test CA"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names`, valid now unless `expired`; returns (cert, key) files.
    fn server(&self, name: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (cert_file, key_file) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_master(cert: &Path, key: &Path) -> DevCluster {
    let agent = AgentSpec::parse(AgentSpecKind::Virtual, "cpus:4;mem:4096", "").unwrap();
    DevCluster::start(DevClusterConfig {
        agents: vec![agent],
        allocation_interval: Duration::from_millis(50),
        tls: Some(server_config(cert, key).unwrap()),
        ..DevClusterConfig::default()
    })
    .await
    .unwrap()
}

fn subscribe_call() -> call::Subscribe {
    call::Subscribe {
        framework_info: pb::FrameworkInfo {
            user: "nobody".into(),
            name: "tls-test".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// One SUBSCRIBE attempt to `url` trusting `ca`; the failure's message.
async fn refusal(url: &str, ca: &Path) -> String {
    let client = SchedulerClient::new(ClientConfig {
        ca_bundle: Some(ca.to_owned()),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        connect_timeout: Duration::from_secs(10),
        ..ClientConfig::new(vec![url.parse().unwrap()])
    })
    .unwrap();
    let result = tokio::time::timeout(DEADLINE, client.subscribe(subscribe_call()))
        .await
        .expect("the attempt ends");
    assert!(result.is_err(), "{url} was trusted");
    client.problem().expect("the failure is kept").message
}

#[tokio::test]
async fn the_controller_subscribes_and_launches_over_tls_to_the_dev_master_binary() {
    let pki = Pki::new("tls-ok");
    let (cert, key) = pki.server("master", &["localhost", "127.0.0.1"], false);
    let mut devcluster = tokio::process::Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args(["devcluster", "--listen", "127.0.0.1:0", "--virtual-agents"])
        .args(["--allocation-interval", "100ms"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("MESOS_RECONCILER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(devcluster.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the dev cluster prints its URL")
        .unwrap()
        .expect("a line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let mut fixture = Fixture::new("tls", &url);
    fixture.write_spec("web", &proc::service_spec(2));
    let ca = pki.ca_pem().to_str().unwrap().to_owned();
    let mut ctl = fixture.spawn_with(Spawn {
        args: &["--ca-bundle", &ca],
        ..Spawn::default()
    });
    ctl.status_url().await;
    proc::wait_for("two tasks running over TLS", DEADLINE, || async {
        let s = ctl.status().await?;
        let running: u32 = s.specs.iter().map(|spec| spec.running).sum();
        match (s.connected, &s.master, running) {
            (true, Some(master), 2) if master.starts_with("https://") => Ok(()),
            other => Err(format!("connected, master, running: {other:?}")),
        }
    })
    .await;
    ctl.sigterm();
    ctl.wait_exit(DEADLINE).await;
    devcluster.kill().await.unwrap();
}

#[tokio::test]
async fn a_master_certificate_from_another_ca_is_refused_as_such() {
    let pki = Pki::new("tls-ca");
    let other = Pki::new("tls-other-ca");
    let (cert, key) = pki.server("master", &["localhost", "127.0.0.1"], false);
    let master = tls_master(&cert, &key).await;
    let message = refusal(&master.url(), &other.ca_pem()).await;
    assert!(message.contains("TLS error"), "{message}");
    assert!(
        message.contains("the master's certificate is not signed by a trusted CA"),
        "{message}"
    );
    // The right CA on the same master subscribes: the refusal was the CA's doing.
    let client = SchedulerClient::new(ClientConfig {
        ca_bundle: Some(pki.ca_pem()),
        ..ClientConfig::new(vec![master.url().parse().unwrap()])
    })
    .unwrap();
    let subscribed = tokio::time::timeout(DEADLINE, client.subscribe(subscribe_call()))
        .await
        .unwrap();
    assert!(subscribed.is_ok(), "{:?}", subscribed.err());
    master.shutdown().await;
}

#[tokio::test]
async fn an_expired_master_certificate_is_refused_as_expired() {
    let pki = Pki::new("tls-expired");
    let (cert, key) = pki.server("master", &["localhost", "127.0.0.1"], true);
    let master = tls_master(&cert, &key).await;
    let message = refusal(&master.url(), &pki.ca_pem()).await;
    assert!(message.contains("TLS error"), "{message}");
    assert!(
        message.contains("the master's certificate has expired"),
        "{message}"
    );
    master.shutdown().await;
}

#[tokio::test]
async fn a_master_certificate_for_another_host_is_refused_naming_the_host() {
    let pki = Pki::new("tls-host");
    let (cert, key) = pki.server("master", &["mesos-1.example.org"], false);
    let master = tls_master(&cert, &key).await;
    let message = refusal(&master.url(), &pki.ca_pem()).await;
    assert!(message.contains("TLS error"), "{message}");
    assert!(
        message.contains("the master's certificate is not valid for 127.0.0.1"),
        "{message}"
    );
    master.shutdown().await;
}
