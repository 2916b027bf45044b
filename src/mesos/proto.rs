//! Generated wire types (prost) for packages `mesos.v1` and `mesos.v1.scheduler`, and the
//! compiled descriptor set that the JSON mapping walks.

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }
}

/// The serialized `FileDescriptorSet` of both `.proto` files.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesos_descriptor.bin"));
