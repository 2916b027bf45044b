//! The JSON mapping real Mesos speaks, which is stout's `protobuf::parse` / `jsonify` and NOT the
//! proto3 JSON mapping: snake_case field names, 64-bit integers as plain numbers, declared defaults
//! emitted for unset fields, unknown enum names dropped. It also owns the required-field check the
//! dev cluster master needs to answer 400 like the real one.
//!
//! Every conversion goes through the compiled descriptor set (`proto::DESCRIPTOR_SET`): a prost
//! message is encoded to protobuf bytes, decoded into a `prost_reflect::DynamicMessage`, and walked
//! field by field (and the reverse for input). prost-reflect's own serde support is deliberately not
//! used, because its rules are the proto3 ones.

use std::fmt::{Display, LowerExp};
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};

use super::proto::DESCRIPTOR_SET;

/// A JSON document could not be turned into the wanted message. `path` names the field where the
/// problem is, starting at the message type, e.g. `Call.decline.filters.refuse_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at {path}")]
pub struct JsonError {
    path: String,
    reason: String,
}

impl JsonError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        JsonError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Where the problem is, e.g. `Call.accept.filters.refuse_seconds` or `Call.subscribe` (a
    /// repeated element carries its index: `Call.accept.operations[0]`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the location.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The descriptors of both `.proto` files, decoded once.
///
/// # Panics
///
/// If the descriptor set written by `build.rs` does not decode, which would be a build bug.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(DESCRIPTOR_SET)
            .expect("build.rs writes a valid FileDescriptorSet of the project's protos")
    });
    &POOL
}

/// Serializes `msg` as a Mesos master writes JSON (field declaration order, no whitespace).
///
/// # Panics
///
/// If `M` is not one of the types compiled from the project's `.proto` files.
pub fn to_vec<M: Message + Name>(msg: &M) -> Vec<u8> {
    let mut out = String::new();
    message_json(&to_dynamic(msg)).write(&mut out);
    out.into_bytes()
}

/// The same document as [`to_vec`], as a `serde_json::Value` (whose objects do not keep the
/// declaration order; use [`to_vec`] for the wire).
///
/// # Panics
///
/// If `M` is not one of the types compiled from the project's `.proto` files.
pub fn to_value<M: Message + Name>(msg: &M) -> serde_json::Value {
    message_json(&to_dynamic(msg)).into_value()
}

/// Parses JSON as a Mesos master reads it; a missing required field is an error.
pub fn from_slice<M: Message + Name + Default>(bytes: &[u8]) -> Result<M, JsonError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| JsonError::new(root_name::<M>(), format!("malformed json: {e}")))?;
    from_value(&value)
}

/// Like [`from_slice`], from an already parsed document.
pub fn from_value<M: Message + Name + Default>(value: &serde_json::Value) -> Result<M, JsonError> {
    let (dynamic, root) = parse_dynamic::<M>(value)?;
    if let Some(path) = first_missing_required(&dynamic, &root) {
        return Err(JsonError::new(path, "required field is missing"));
    }
    M::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|e| JsonError::new(root, format!("cannot convert to the message type: {e}")))
}

/// The JSON counterpart of [`missing_required_field`]: `Ok(Some(path))` when the document
/// converts but lacks a required field, `Ok(None)` when it is complete, and an error when it does
/// not convert at all (wrong types, malformed values).
pub fn missing_required_field_json<M: Name>(
    value: &serde_json::Value,
) -> Result<Option<String>, JsonError> {
    let (dynamic, root) = parse_dynamic::<M>(value)?;
    Ok(first_missing_required(&dynamic, &root))
}

/// The path (e.g. `Call.subscribe.framework_info.user`) of the first required field missing from
/// a protobuf-encoded `M`, looking inside nested, repeated and map-valued messages; `None` if all
/// are present. prost fills absent required fields with defaults, so this has to look at the
/// bytes: it is what lets the dev cluster master answer 400 where the real one's parser fails.
/// An error means the bytes are not a protobuf `M` at all.
///
/// # Panics
///
/// If `M` is not one of the types compiled from the project's `.proto` files.
pub fn missing_required_field<M: Name>(
    protobuf_bytes: &[u8],
) -> Result<Option<String>, prost::DecodeError> {
    let dynamic = DynamicMessage::decode(known_descriptor::<M>(), protobuf_bytes)?;
    Ok(first_missing_required(&dynamic, &root_name::<M>()))
}

// ---------------------------------------------------------------------------------------------
// Descriptors

/// Converts a document into a dynamic `M` without the required-field check; also returns the
/// root of error paths.
fn parse_dynamic<M: Name>(
    value: &serde_json::Value,
) -> Result<(DynamicMessage, String), JsonError> {
    let root = root_name::<M>();
    let desc = descriptor_of::<M>()
        .ok_or_else(|| JsonError::new(&root, "no descriptor for this message type"))?;
    let dynamic = parse_message(&desc, value, &root)?;
    Ok((dynamic, root))
}

fn descriptor_of<M: Name>() -> Option<MessageDescriptor> {
    descriptor_pool().get_message_by_name(&M::full_name())
}

/// The type name relative to its package (`Call`, `Call.Subscribe`), the root of error paths.
fn root_name<M: Name>() -> String {
    let full = M::full_name();
    match full
        .strip_prefix(M::PACKAGE)
        .and_then(|s| s.strip_prefix('.'))
    {
        Some(relative) => relative.to_owned(),
        None => full,
    }
}

/// The descriptor of a type that must be in the set: callers pass generated mesos types only.
fn known_descriptor<M: Name>() -> MessageDescriptor {
    descriptor_of::<M>().unwrap_or_else(|| {
        panic!(
            "{} is not in the project's descriptor set; json only maps the generated mesos types",
            M::full_name()
        )
    })
}

fn to_dynamic<M: Message + Name>(msg: &M) -> DynamicMessage {
    DynamicMessage::decode(known_descriptor::<M>(), msg.encode_to_vec().as_slice())
        .expect("bytes prost just encoded from the same descriptor always decode")
}

/// Fields in the order the `.proto` declares them, which is the order stout writes them in.
/// (`MessageDescriptor::fields` iterates by field number instead.)
fn fields_in_declaration_order(desc: &MessageDescriptor) -> Vec<FieldDescriptor> {
    desc.descriptor_proto()
        .field
        .iter()
        .filter_map(|f| u32::try_from(f.number()).ok())
        .filter_map(|number| desc.get_field(number))
        .collect()
}

/// Whether stout emits this field's default when it is unset: it declares one and is not
/// deprecated (`FrameworkInfo.role` and `Resource.role` are, so `"*"` is never invented).
fn emits_default(field: &FieldDescriptor) -> bool {
    let raw = field.field_descriptor_proto();
    let deprecated = raw
        .options
        .as_ref()
        .and_then(|o| o.deprecated)
        .unwrap_or(false);
    raw.default_value.is_some() && !deprecated
}

/// Map entries sorted by key, so output and error paths do not depend on hash order.
fn sorted_entries(map: &std::collections::HashMap<MapKey, Value>) -> Vec<(&MapKey, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Required fields

fn first_missing_required(msg: &DynamicMessage, path: &str) -> Option<String> {
    for field in fields_in_declaration_order(&msg.descriptor()) {
        let field_path = || format!("{path}.{}", field.name());
        if field.is_map() || field.is_list() {
            let value = msg.get_field(&field);
            let found = match value.as_ref() {
                Value::List(items) => items.iter().enumerate().find_map(|(i, item)| {
                    item.as_message()
                        .and_then(|m| first_missing_required(m, &format!("{}[{i}]", field_path())))
                }),
                Value::Map(map) => sorted_entries(map).into_iter().find_map(|(k, item)| {
                    item.as_message().and_then(|m| {
                        let key = map_key_text(k);
                        first_missing_required(m, &format!("{}[{key:?}]", field_path()))
                    })
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        } else if msg.has_field(&field) {
            if let Some(m) = msg.get_field(&field).as_message() {
                if let Some(found) = first_missing_required(m, &field_path()) {
                    return Some(found);
                }
            }
        } else if field.is_required() {
            return Some(field_path());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Output

/// A JSON tree that keeps member order (serde_json's `Map` sorts keys unless its
/// `preserve_order` feature is on) and numbers exactly as they will be written.
enum Json {
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn write(&self, out: &mut String) {
        match self {
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn into_value(self) -> serde_json::Value {
        match self {
            Json::Bool(b) => serde_json::Value::Bool(b),
            // The text was produced by `integer`/`float` below and is always a valid JSON number;
            // the string fallback only exists so that this conversion cannot panic.
            Json::Number(text) => match serde_json::from_str::<serde_json::Number>(&text) {
                Ok(n) => serde_json::Value::Number(n),
                Err(_) => serde_json::Value::String(text),
            },
            Json::String(s) => serde_json::Value::String(s),
            Json::Array(items) => items.into_iter().map(Json::into_value).collect(),
            Json::Object(members) => serde_json::Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

/// A JSON string literal; serde_json escapes exactly as stout does (`\"`, `\\`, `\n`, `\r`, `\t`,
/// `\b`, `\f`, other control characters as `\u00XX`).
fn write_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn message_json(msg: &DynamicMessage) -> Json {
    let mut members = Vec::new();
    for field in fields_in_declaration_order(&msg.descriptor()) {
        if let Some(value) = field_json(msg, &field) {
            members.push((field.name().to_owned(), value));
        }
    }
    Json::Object(members)
}

fn field_json(msg: &DynamicMessage, field: &FieldDescriptor) -> Option<Json> {
    let kind = field.kind();
    if field.is_map() {
        let value = msg.get_field(field);
        let map = value.as_map().filter(|m| !m.is_empty())?;
        let value_kind = kind.as_message()?.map_entry_value_field().kind();
        let members = sorted_entries(map)
            .into_iter()
            .map(|(k, v)| (map_key_text(k), value_json(v, &value_kind)))
            .collect();
        return Some(Json::Object(members));
    }
    if field.is_list() {
        let value = msg.get_field(field);
        let items = value.as_list().filter(|l| !l.is_empty())?;
        return Some(Json::Array(
            items.iter().map(|v| value_json(v, &kind)).collect(),
        ));
    }
    if msg.has_field(field) {
        return Some(value_json(&msg.get_field(field), &kind));
    }
    // An absent required message is left out rather than written as `{}`, which would itself
    // lack its required fields; prost always encodes required scalars, so they are present.
    let is_message = matches!(kind, Kind::Message(_));
    if !is_message && (field.is_required() || emits_default(field)) {
        return Some(value_json(&field.default_value(), &kind));
    }
    None
}

fn value_json(value: &Value, kind: &Kind) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => integer(n),
        Value::I64(n) => integer(n),
        Value::U32(n) => integer(n),
        Value::U64(n) => integer(n),
        Value::F32(x) => float(*x, f64::from(*x)),
        Value::F64(x) => float(*x, *x),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::EnumNumber(n) => {
            let name = kind.as_enum().and_then(|e| e.get_value(*n));
            match name {
                Some(v) => Json::String(v.name().to_owned()),
                // A number this build does not know (a newer master's value) stays a number.
                None => integer(n),
            }
        }
        Value::Message(m) => message_json(m),
        Value::List(items) => Json::Array(items.iter().map(|v| value_json(v, kind)).collect()),
        Value::Map(map) => Json::Object(
            sorted_entries(map)
                .into_iter()
                .map(|(k, v)| (map_key_text(k), value_json(v, kind)))
                .collect(),
        ),
    }
}

fn integer(n: &impl Display) -> Json {
    Json::Number(n.to_string())
}

/// Doubles always carry a fractional part (`15.0`, `1.0e20`) as stout prints them; NaN and the
/// infinities are not JSON numbers, so they are written as the strings the parser accepts.
fn float<T: Display + LowerExp>(x: T, wide: f64) -> Json {
    if wide.is_nan() {
        return Json::String("NaN".to_owned());
    }
    if wide.is_infinite() {
        let text = if wide > 0.0 { "Infinity" } else { "-Infinity" };
        return Json::String(text.to_owned());
    }
    let magnitude = wide.abs();
    let mut text = if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        format!("{x:e}")
    } else {
        format!("{x}")
    };
    let mantissa_end = text.find('e').unwrap_or(text.len());
    if !text[..mantissa_end].contains('.') {
        text.insert_str(mantissa_end, ".0");
    }
    Json::Number(text)
}

// ---------------------------------------------------------------------------------------------
// Input

/// Standard alphabet; padding optional because some clients strip it.
const BASE64_INPUT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn parse_message(
    desc: &MessageDescriptor,
    json: &serde_json::Value,
    path: &str,
) -> Result<DynamicMessage, JsonError> {
    let serde_json::Value::Object(members) = json else {
        return Err(JsonError::new(
            path,
            format!("expected a json object, got {}", describe(json)),
        ));
    };
    let mut msg = DynamicMessage::new(desc.clone());
    for (key, value) in members {
        // Unknown keys are ignored, as stout does; the lowerCamel json_name is accepted too.
        let Some(field) = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key))
        else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let field_path = format!("{path}.{}", field.name());
        if field.is_map() {
            let map = parse_map(&field, value, &field_path)?;
            msg.set_field(&field, Value::Map(map));
        } else if field.is_list() {
            // stout accepts a lone value for a repeated field as a one-element list.
            let items = match value {
                serde_json::Value::Array(items) => items.as_slice(),
                single => std::slice::from_ref(single),
            };
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    continue;
                }
                // An unrecognised enum name is dropped from a repeated field.
                if let Some(v) = parse_single(&field.kind(), item, &format!("{field_path}[{i}]"))? {
                    list.push(v);
                }
            }
            msg.set_field(&field, Value::List(list));
        } else {
            if value.is_array() {
                return Err(JsonError::new(
                    field_path,
                    "expected a single value, got a json array",
                ));
            }
            match parse_single(&field.kind(), value, &field_path)? {
                Some(v) => msg.set_field(&field, v),
                None if field.is_required() => {
                    return Err(JsonError::new(
                        field_path,
                        format!("unknown enum value {value} for a required field"),
                    ));
                }
                None => {}
            }
        }
    }
    Ok(msg)
}

fn parse_map(
    field: &FieldDescriptor,
    json: &serde_json::Value,
    path: &str,
) -> Result<std::collections::HashMap<MapKey, Value>, JsonError> {
    let serde_json::Value::Object(members) = json else {
        return Err(JsonError::new(
            path,
            format!("expected a json object for a map, got {}", describe(json)),
        ));
    };
    let Kind::Message(entry) = field.kind() else {
        return Err(JsonError::new(path, "map field without an entry message"));
    };
    let key_kind = entry.map_entry_key_field().kind();
    let value_kind = entry.map_entry_value_field().kind();
    let mut map = std::collections::HashMap::with_capacity(members.len());
    for (key_text, value) in members {
        if value.is_null() {
            continue;
        }
        let entry_path = format!("{path}[{key_text:?}]");
        let key = parse_map_key(&key_kind, key_text, &entry_path)?;
        if let Some(v) = parse_single(&value_kind, value, &entry_path)? {
            map.insert(key, v);
        }
    }
    Ok(map)
}

fn parse_map_key(kind: &Kind, text: &str, path: &str) -> Result<MapKey, JsonError> {
    let as_json = serde_json::Value::String(text.to_owned());
    Ok(match kind {
        Kind::String => MapKey::String(text.to_owned()),
        Kind::Bool => match text {
            "true" => MapKey::Bool(true),
            "false" => MapKey::Bool(false),
            _ => return Err(JsonError::new(path, "map key is not true or false")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(parse_int(&as_json, path)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(parse_int(&as_json, path)?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(parse_int(&as_json, path)?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(parse_int(&as_json, path)?),
        _ => return Err(JsonError::new(path, "map key type is not supported")),
    })
}

/// One value of a singular field, list element or map value. `Ok(None)` means an enum name this
/// build does not know, which the caller drops (or rejects for a required field).
fn parse_single(
    kind: &Kind,
    json: &serde_json::Value,
    path: &str,
) -> Result<Option<Value>, JsonError> {
    use serde_json::Value as J;
    let value = match kind {
        Kind::Double => Value::F64(parse_double(json, path)?),
        Kind::Float => {
            let wide = parse_double(json, path)?;
            #[expect(
                clippy::cast_possible_truncation,
                reason = "range is checked just below"
            )]
            let narrow = wide as f32;
            if wide.is_finite() && narrow.is_infinite() {
                return Err(JsonError::new(
                    path,
                    format!("{wide} is out of range for float"),
                ));
            }
            Value::F32(narrow)
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(parse_int(json, path)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(parse_int(json, path)?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(parse_int(json, path)?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(parse_int(json, path)?),
        Kind::Bool => match json {
            J::Bool(b) => Value::Bool(*b),
            J::String(s) if s == "true" => Value::Bool(true),
            J::String(s) if s == "false" => Value::Bool(false),
            other => {
                return Err(JsonError::new(
                    path,
                    format!("expected a boolean, got {}", describe(other)),
                ));
            }
        },
        Kind::String => match json {
            J::String(s) => Value::String(s.clone()),
            other => {
                return Err(JsonError::new(
                    path,
                    format!("expected a string, got {}", describe(other)),
                ));
            }
        },
        Kind::Bytes => match json {
            J::String(s) => match BASE64_INPUT.decode(s) {
                Ok(bytes) => Value::Bytes(bytes.into()),
                Err(e) => return Err(JsonError::new(path, format!("invalid base64: {e}"))),
            },
            other => {
                return Err(JsonError::new(
                    path,
                    format!("expected a base64 string, got {}", describe(other)),
                ));
            }
        },
        Kind::Enum(e) => match json {
            J::String(name) => match e.get_value_by_name(name) {
                Some(v) => Value::EnumNumber(v.number()),
                None => return Ok(None),
            },
            // A number is kept even if unknown, mirroring the output side.
            J::Number(_) => Value::EnumNumber(parse_int(json, path)?),
            other => {
                return Err(JsonError::new(
                    path,
                    format!("expected an enum name, got {}", describe(other)),
                ));
            }
        },
        Kind::Message(m) => Value::Message(parse_message(m, json, path)?),
    };
    Ok(Some(value))
}

/// Integers of any width: a JSON number (an integral float such as `5.0` too) or a numeric
/// string such as `"5"`, which is how proto3-minded clients write 64-bit values.
fn parse_int<T: TryFrom<i128>>(json: &serde_json::Value, path: &str) -> Result<T, JsonError> {
    let wide: i128 = match json {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u)
            } else {
                match n.as_f64() {
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "integral, and out-of-range values saturate and are rejected below"
                    )]
                    Some(f) if f.fract() == 0.0 => f as i128,
                    _ => {
                        return Err(JsonError::new(
                            path,
                            format!("expected an integer, got {n}"),
                        ));
                    }
                }
            }
        }
        serde_json::Value::String(s) => s.parse::<i128>().map_err(|_| {
            JsonError::new(path, format!("expected an integer, got the string {s:?}"))
        })?,
        other => {
            return Err(JsonError::new(
                path,
                format!("expected an integer, got {}", describe(other)),
            ));
        }
    };
    T::try_from(wide).map_err(|_| {
        JsonError::new(
            path,
            format!("{wide} is out of range for {}", std::any::type_name::<T>()),
        )
    })
}

fn parse_double(json: &serde_json::Value, path: &str) -> Result<f64, JsonError> {
    match json {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| JsonError::new(path, format!("expected a number, got {n}"))),
        serde_json::Value::String(s) => match s.as_str() {
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse::<f64>().map_err(|_| {
                JsonError::new(path, format!("expected a number, got the string {s:?}"))
            }),
        },
        other => Err(JsonError::new(
            path,
            format!("expected a number, got {}", describe(other)),
        )),
    }
}

fn describe(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => format!("the string {s:?}"),
        serde_json::Value::Array(_) => "an array".to_owned(),
        serde_json::Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
