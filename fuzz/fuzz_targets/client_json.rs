//! libFuzzer entry of the `client_json` target (see `tests/fuzz/targets.rs`): a broken property
//! panics, which libFuzzer reports as a crash and saves under `artifacts/client_json/`.
#![no_main]

#[path = "../../tests/fuzz/targets.rs"]
#[allow(dead_code, reason = "each entry uses one target of the module")]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(why) = targets::client_json(data) {
        panic!("client_json: {why}");
    }
});
