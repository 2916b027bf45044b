//! The border with Mesos: wire types generated from the project's own `.proto`, the JSON mapping
//! real masters speak, the RecordIO framing of the event stream, the HTTP scheduler client, and
//! the master's read-only operator endpoints (`operator`).
//! Nothing outside this module sees a prost type.

pub mod client;
pub mod convert;
pub mod encoding;
pub mod json;
pub mod operator;
pub mod proto;
pub mod recordio;
