//! The two encodings a master speaks: protobuf and JSON. Each knows its exact `Content-Type`
//! and how to turn a wire message into bytes and back.

use prost::{Message, Name};

/// How calls and events are serialized on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/x-protobuf`: the default, compact and unambiguous.
    #[default]
    Protobuf,
    /// `application/json`, with the field naming and value rules of real Mesos (see `json`).
    Json,
}

/// A message could not be decoded in the given encoding.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid json: {0}")]
    Json(#[from] super::json::JsonError),
}

impl Encoding {
    /// The exact `Content-Type` (and `Accept`) value; masters compare it byte for byte.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Serializes one message.
    pub fn encode<M: Message + Name>(self, msg: &M) -> Vec<u8> {
        match self {
            Encoding::Protobuf => msg.encode_to_vec(),
            Encoding::Json => super::json::to_vec(msg),
        }
    }

    /// Parses one message.
    pub fn decode<M: Message + Name + Default>(self, bytes: &[u8]) -> Result<M, DecodeError> {
        match self {
            Encoding::Protobuf => Ok(M::decode(bytes)?),
            Encoding::Json => Ok(super::json::from_slice(bytes)?),
        }
    }
}
