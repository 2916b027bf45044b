//! Writes the seed corpus of every target under `fuzz/corpus/` from real messages (the spec
//! fixtures, Events and Calls as a master and a scheduler send them), so the corpus is made, not
//! typed byte by byte. Run once after changing it, and commit the files:
//! `cargo test --test fuzz write_corpus -- --ignored`.

use std::path::{Path, PathBuf};

use mesos_reconciler::mesos::json;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{Call, Event, Response};
use mesos_reconciler::mesos::recordio;
use prost::Message;

use super::master::FRAMEWORK_ID;

const OFFER: &str = r#"{"id":{"value":"o1"},"framework_id":{"value":"f1"},"agent_id":{"value":"a1"},"hostname":"h1","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":4.0},"role":"*"},{"name":"mem","type":"SCALAR","scalar":{"value":4096}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}}],"attributes":[{"name":"rack","type":"TEXT","text":{"value":"r1"}}]}"#;
const STATUS: &str = r#"{"task_id":{"value":"web.0.g1.u"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","agent_id":{"value":"a1"},"uuid":"AAECAwQFBgcICQoLDA0ODw==","timestamp":1700000000.5,"message":"ok","labels":{"labels":[{"key":"k","value":"v"}]},"healthy":true}"#;

fn events() -> Vec<String> {
    vec![
        r#"{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"f1"},"heartbeat_interval_seconds":15}}"#.to_owned(),
        format!(r#"{{"type":"OFFERS","offers":{{"offers":[{OFFER}]}}}}"#),
        format!(r#"{{"type":"UPDATE","update":{{"status":{STATUS}}}}}"#),
        r#"{"type":"RESCIND","rescind":{"offer_id":{"value":"o1"}}}"#.to_owned(),
        r#"{"type":"ERROR","error":{"message":"Framework has been removed"}}"#.to_owned(),
        r#"{"type":"FAILURE","failure":{"agent_id":{"value":"a1"},"status":9}}"#.to_owned(),
        r#"{"type":"HEARTBEAT"}"#.to_owned(),
    ]
}

fn calls() -> Vec<String> {
    let fw = format!(r#""framework_id":{{"value":"{FRAMEWORK_ID}"}}"#);
    vec![
        format!(
            r#"{{{fw},"type":"DECLINE","decline":{{"offer_ids":[{{"value":"o1"}}],"filters":{{"refuse_seconds":5}}}}}}"#
        ),
        format!(
            r#"{{{fw},"type":"ACCEPT","accept":{{"offer_ids":[{{"value":"o1"}}],"operations":[{{"type":"LAUNCH","launch":{{"task_infos":[{{"name":"t","task_id":{{"value":"t1"}},"agent_id":{{"value":"a1"}},"resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}],"command":{{"value":"sleep 1","environment":{{"variables":[{{"name":"A","value":"b"}}]}}}}}}]}}}}]}}}}"#
        ),
        format!(
            r#"{{{fw},"type":"KILL","kill":{{"task_id":{{"value":"t1"}},"agent_id":{{"value":"a1"}}}}}}"#
        ),
        format!(
            r#"{{{fw},"type":"RECONCILE","reconcile":{{"tasks":[{{"task_id":{{"value":"t1"}}}}]}}}}"#
        ),
        format!(
            r#"{{{fw},"type":"ACKNOWLEDGE","acknowledge":{{"agent_id":{{"value":"a1"}},"task_id":{{"value":"t1"}},"uuid":"AAECAwQFBgcICQoLDA0ODw=="}}}}"#
        ),
        format!(r#"{{{fw},"type":"REVIVE","revive":{{"roles":["*"]}}}}"#),
        format!(r#"{{{fw},"type":"SUPPRESS","suppress":{{"roles":["*"]}}}}"#),
        format!(
            r#"{{{fw},"type":"UPDATE_FRAMEWORK","update_framework":{{"framework_info":{{"user":"nobody","name":"fuzz","id":{{"value":"{FRAMEWORK_ID}"}}}}}}}}"#
        ),
    ]
}

fn dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(dir(target).join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes the committed corpus; run by hand"]
fn write_corpus() {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/specs");
    for kind in ["valid", "invalid"] {
        for entry in std::fs::read_dir(specs.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{kind}-{}", path.file_name().unwrap().to_string_lossy());
            write("spec", &name, &std::fs::read(&path).unwrap());
        }
    }
    write(
        "spec",
        "env-and-user.toml",
        b"command = \"x\"\nuser = \"nobody\"\n[env]\nAPI_TOKEN = \"t\"\n",
    );
    write("spec", "not-utf8.toml", b"command = \"\xff\xfe\"\n");

    let mut stream = Vec::new();
    for (i, text) in events().iter().enumerate() {
        let event: Event = json::from_slice(text.as_bytes()).unwrap();
        write("event_json", &format!("{i}.json"), text.as_bytes());
        let bytes = event.encode_to_vec();
        write("event_protobuf", &format!("{i}.pb"), &bytes);
        stream.extend_from_slice(&recordio::encode(text.as_bytes()));
    }
    write("recordio", "events.rio", &stream);
    write("recordio", "short.rio", b"5\nhello0\n3\nabc");
    write("recordio", "too-long.rio", b"65\nxxxxxxxx");
    write("recordio", "bad-length.rio", b"12a\nxxxxxxxxxxxx");

    let response = r#"{"type":"RECONCILE_OPERATIONS","reconcile_operations":{"operation_statuses":[{"state":"OPERATION_FINISHED","operation_id":{"value":"op"}}]}}"#;
    let _: Response = json::from_slice(response.as_bytes()).unwrap();
    let _: pb::TaskStatus = json::from_slice(STATUS.as_bytes()).unwrap();
    let _: pb::Offer = json::from_slice(OFFER.as_bytes()).unwrap();
    let frameworks = r#"{"frameworks":[{"id":"f1","name":"mesos-reconciler","principal":"p","active":true,"connected":true,"hostname":"h","registered_time":1700000000.1,"tasks":[{"id":"web.0.g1.u","name":"web","state":"TASK_RUNNING","slave_id":"a1","labels":[{"key":"k","value":"v"}],"resources":{"cpus":0.1,"mem":32,"ports":"[31000-31000]"}}],"completed_tasks":[]}],"completed_frameworks":[]}"#;
    for (i, body) in [response, STATUS, OFFER, frameworks].iter().enumerate() {
        let mut bytes = vec![i as u8];
        bytes.extend_from_slice(body.as_bytes());
        write("client_json", &format!("{i}.json"), &bytes);
    }

    for (i, text) in calls().iter().enumerate() {
        let call: Call = json::from_slice(text.as_bytes()).unwrap();
        let mut as_json = vec![0u8];
        as_json.extend_from_slice(text.as_bytes());
        write("master", &format!("{i}.json"), &as_json);
        let mut as_pb = vec![1u8];
        as_pb.extend_from_slice(&call.encode_to_vec());
        write("master", &format!("{i}.pb"), &as_pb);
    }
}
