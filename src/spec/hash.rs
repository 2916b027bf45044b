//! The spec content hash: what decides whether an edited file is a new generation.
//!
//! The normalised spec is written as canonical JSON (object keys sorted at every level, no
//! whitespace, numbers as serde_json prints them, which is the same on every platform) with `id` and
//! `instances` left out, and hashed with FNV-1a 128. Leaving `instances` out is what makes scaling
//! alone never a new generation; leaving `id` out makes the hash describe what runs. Because the input
//! is the *normalised* spec, comments, key order, whitespace and explicit defaults cannot change it.
//!
//! FNV-1a is not cryptographic; it does not need to be. Spec files are written by the operators this
//! controller serves, and the only thing a collision could do is make the controller miss an edit.
//! 128 bits make an accidental collision practically impossible, and the function is a few lines with
//! published test vectors, so the hash stays stable without a new dependency. It stays ours rather
//! than a hashing crate's for a stronger reason too: the hash is stored (the ledger, task labels),
//! and any change of function would make every spec a new generation, restarting every task of an
//! upgraded controller. The input starts with a version tag so a future change of the canonical
//! form is a deliberate, visible new hash space.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::model::Spec;

/// A stable 128-bit content hash of a normalised spec. Shown and stored as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecHash(u128);

/// Bumped if the canonical form ever changes, so old and new hashes never compare equal by accident.
const CANONICAL_VERSION_TAG: &str = "mesos-reconciler spec v1\n";

impl Spec {
    /// The content hash of this spec, excluding `id` and `instances`. Deterministic across runs,
    /// processes and platforms.
    pub fn content_hash(&self) -> SpecHash {
        // Serializing plain data (string keys, no fallible custom serializers) into a `Value` has no
        // failure path; NaN cannot occur because the parser rejects non-finite numbers.
        let mut value = serde_json::to_value(self).expect("a Spec always serializes to JSON");
        if let Value::Object(map) = &mut value {
            map.remove("id");
            map.remove("instances");
        }
        let mut canonical = String::from(CANONICAL_VERSION_TAG);
        write_canonical(&value, &mut canonical);
        SpecHash(fnv1a_128(canonical.as_bytes()))
    }
}

impl SpecHash {
    /// The hash as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// A hash from its numeric value (e.g. read back from a task label).
    pub fn from_u128(value: u128) -> Self {
        SpecHash(value)
    }

    /// The first 8 hex digits, enough to tell generations apart in logs and task ids.
    pub fn short(self) -> String {
        format!("{:08x}", self.0 >> 96)
    }
}

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpecHash({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a spec hash (32 hex digits)")]
pub struct ParseHashError(String);

impl FromStr for SpecHash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseHashError(s.to_owned()));
        }
        u128::from_str_radix(s, 16)
            .map(SpecHash)
            .map_err(|_| ParseHashError(s.to_owned()))
    }
}

impl Serialize for SpecHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpecHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Writes `value` as JSON with object keys sorted at every level and no whitespace. Sorting here,
/// rather than trusting the map type, keeps the hash independent of serde_json's `preserve_order`
/// feature, which any crate in the build could switch on.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped by serde_json (stable across versions: it is JSON's own escaping).
fn write_json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// FNV-1a with the published 128-bit offset basis and prime.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u128::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_published_vectors() {
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(fnv1a_128(b"foobar"), 0x343e1662793c64bf6f0d3597ba446f18);
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes() {
        let value = serde_json::json!({"b": [1, 2.5, null], "a": {"z": true, "y": "q\"\n\u{1}"}});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(
            out,
            r#"{"a":{"y":"q\"\n\u0001","z":true},"b":[1,2.5,null]}"#
        );
    }

    #[test]
    fn hash_text_round_trips() {
        let hash = SpecHash::from_u128(0x0123456789abcdef0011223344556677);
        assert_eq!(hash.to_string(), "0123456789abcdef0011223344556677");
        assert_eq!(hash.short(), "01234567");
        assert_eq!(hash.to_string().parse::<SpecHash>(), Ok(hash));
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, "\"0123456789abcdef0011223344556677\"");
        assert_eq!(serde_json::from_str::<SpecHash>(&json).unwrap(), hash);
        assert!("xyz".parse::<SpecHash>().is_err());
        assert!(
            "+123456789abcdef0011223344556677"
                .parse::<SpecHash>()
                .is_err()
        );
    }
}
