//! Fuzz targets of every parser that reads what others wrote: spec files, the RecordIO framing
//! of the master's stream, Events in protobuf and JSON, the JSON of the other messages the client
//! reads, and the dev master's scheduler endpoint. Each runs from its committed corpus for a
//! bounded time (`support: fuzz/engine.rs` says how, and how to run longer):
//!
//! ```text
//! FUZZ_SECS=600 cargo test --test fuzz -- --nocapture            # ten minutes per target
//! FUZZ_SECS=3600 cargo test --test fuzz spec -- --nocapture      # one target for an hour
//! FUZZ_SEED=1234 cargo test --test fuzz                          # repeat a run
//! ```

#[path = "fuzz/engine.rs"]
mod engine;
#[path = "fuzz/targets.rs"]
mod targets;

use engine::fuzz;

const SPEC_WORDS: &[&[u8]] = &[
    b"command = ",
    b"args = [",
    b"instances = ",
    b"cpus = ",
    b"mem = ",
    b"ports = ",
    b"[env]\n",
    b"[labels]\n",
    b"[backoff]\n",
    b"[update]\n",
    b"[health]\n",
    b"[container]\n",
    b"[[constraints]]\n",
    b"[[uris]]\n",
    b"user = ",
    b"role = ",
    b"restart = ",
    b"kill_grace = ",
    b"\"1m30s\"",
    b"op = \"like\"\n",
    b"value = \"(a|b\"",
    b"\"\"\"",
    b"'''",
    b"\\u{0}",
    b"1e309",
    b"-0",
    b"inf",
    b"nan",
    b"{ a = 1 }",
    b"= [1, \"x\"]",
];

const JSON_WORDS: &[&[u8]] = &[
    b"\"type\":",
    b"\"SUBSCRIBED\"",
    b"\"OFFERS\"",
    b"\"UPDATE\"",
    b"\"RESCIND\"",
    b"\"ERROR\"",
    b"\"offers\":",
    b"\"status\":",
    b"\"task_id\":",
    b"\"state\":\"TASK_RUNNING\"",
    b"\"resources\":",
    b"\"scalar\":{\"value\":",
    b"\"ranges\":{\"range\":[{\"begin\":",
    b"\"framework_id\":{\"value\":\"f\"}",
    b"\"agent_id\":{\"value\":\"a\"}",
    b"\"uuid\":\"",
    b"\"timestamp\":",
    b"1e400",
    b"-1",
    b"18446744073709551616",
    b"null",
    b"[]",
    b"{}",
    b"\"\\ud800\"",
    b"true",
];

/// The spec reader: never a panic; every error at a line and column inside the file.
#[test]
fn spec() {
    fuzz("spec", SPEC_WORDS, targets::spec);
}

/// RecordIO in arbitrary chunks: the same records and error however the stream is cut.
#[test]
fn recordio() {
    let words: &[&[u8]] = &[b"\n", b"0\n", b"64\n", b"65\n", b"-1\n", b" 3\n"];
    fuzz("recordio", words, targets::recordio);
}

/// Events in protobuf.
#[test]
fn event_protobuf() {
    let words: &[&[u8]] = &[&[0x08, 0x01], &[0x12], &[0x1a], &[0xff; 10]];
    fuzz("event_protobuf", words, targets::event_protobuf);
}

/// Events in JSON, and the stability of their JSON mapping.
#[test]
fn event_json() {
    fuzz("event_json", JSON_WORDS, targets::event_json);
}

/// The JSON of the other messages the client reads.
#[test]
fn client_json() {
    fuzz("client_json", JSON_WORDS, targets::client_json);
}

#[path = "fuzz/corpus.rs"]
mod corpus;
#[path = "fuzz/master.rs"]
mod master;
