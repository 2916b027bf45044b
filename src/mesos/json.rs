//! The JSON mapping real Mesos uses (placeholder signatures; being written).

use prost::{Message, Name};

/// A JSON document could not be turned into the wanted message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Serializes `msg` as Mesos writes JSON.
pub fn to_vec<M: Message + Name>(_msg: &M) -> Vec<u8> {
    unimplemented!("json mapping is being written")
}

/// Parses JSON as Mesos reads it.
pub fn from_slice<M: Message + Name + Default>(_bytes: &[u8]) -> Result<M, JsonError> {
    unimplemented!("json mapping is being written")
}
