//! Compiles the project's own `.proto` files with protox (pure Rust, so no system `protoc` is
//! needed) and hands the descriptors to prost-build. The descriptor set is also written to
//! `OUT_DIR` so the JSON mapping and the field-table test can read it at run time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/mesos/v1/mesos.proto",
        "proto/mesos/v1/scheduler/scheduler.proto",
        "proto/mesos/v1/master/master.proto",
        "proto/mesos/v1/agent/agent.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("mesos_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    prost_build::Config::new()
        .enable_type_names()
        .compile_fds(fds)?;
    Ok(())
}
