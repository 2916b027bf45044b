//! The dev master's overview page at `/`: the leader, each agent with used and total resources,
//! the frameworks, and the tasks with their state and links to their sandbox files, which lead
//! to the task's output on its agent. No script, nothing from elsewhere.

use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind};
use mesos_reconciler::mesos::encoding::Encoding;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn the_overview_shows_leader_agents_frameworks_and_tasks_with_sandbox_links() {
    let work_dir = std::env::temp_dir().join(format!("devcluster-test-{}", uuid::Uuid::new_v4()));
    let mut cfg = config();
    cfg.work_dir = work_dir.clone();
    cfg.agents = vec![
        AgentSpec::parse(AgentSpecKind::Process, "cpus:2;mem:512;disk:100", "").unwrap(),
        AgentSpec::parse(AgentSpecKind::Virtual, "cpus:8;mem:4096", "").unwrap(),
    ];
    let cluster = start(cfg).await;
    let url = cluster.url();
    let mut sub = subscribe(&url, Encoding::Json, framework_info("page-viewer", &[])).await;
    let agents = cluster.agent_ids().await;
    let offer = loop {
        let offers = sub.events.next_offers().await;
        if let Some(o) = offers.into_iter().find(|o| o.agent_id.value == agents[0]) {
            break o;
        }
    };
    let mut t = task("shown<task>", &offer);
    t.command.as_mut().unwrap().value = Some("echo output for the page; sleep 600".into());
    sub.launch(&[&offer.id], vec![t]).await;
    sub.until_running("shown<task>").await;

    let response = client().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    let port = cluster.addr().port();
    for expected in [
        format!("master@127.0.0.1:{port}"),
        agents[0].clone(),
        agents[1].clone(),
        // cpus and mem, used / total, on the process agent.
        "0.1 / 2".to_owned(),
        "32 / 512".to_owned(),
        "0 / 8".to_owned(),
        "page-viewer".to_owned(),
        sub.framework_id.clone(),
        // Escaped, as any text from a scheduler is.
        "shown&lt;task&gt;".to_owned(),
        "TASK_RUNNING".to_owned(),
    ] {
        assert!(page.contains(&expected), "{expected} missing from:\n{page}");
    }
    assert!(!page.contains("shown<task>"), "unescaped task id");
    assert!(!page.contains("<script"), "no script");
    // Every link stays on this machine.
    for link in page.split("href=\"").skip(1) {
        let target = link.split('"').next().unwrap();
        assert!(
            target.starts_with('/') || target.starts_with("http://127.0.0.1:"),
            "{target}"
        );
    }
    // The stdout link leads to the task's output on its agent.
    let stdout_link = page
        .split("href=\"")
        .skip(1)
        .map(|l| l.split('"').next().unwrap())
        .find(|l| l.contains("download") && l.contains("stdout"))
        .expect("a stdout link")
        .replace("&amp;", "&");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let body = client().get(&stdout_link).send().await.unwrap();
        assert_eq!(body.status(), StatusCode::OK, "{stdout_link}");
        if body.text().await.unwrap().contains("output for the page") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no output at {stdout_link}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&work_dir);
}
