//! Parsing of the agent flags the dev cluster accepts, in the text forms a Mesos agent takes for
//! `--resources` (`cpus:4;mem:8192;disk:20000;ports:[31000-32000]`) and `--attributes`
//! (`rack:r1;zone:z2`).
//!
//! As in Mesos, an attribute value is a range set when it starts with `[`, a set when it starts
//! with `{`, a SCALAR when it parses as a number, and TEXT otherwise. Resources are always
//! unreserved here: the dev cluster has no roles or reservations, so `cpus(role):1` is refused
//! rather than silently treated as `*`.

use crate::mesos::proto::v1 as pb;
use pb::value::Type as ValueType;

/// A `--resources` or `--attributes` string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("item {item:?} in {what} has no ':' between name and value")]
    MissingColon { what: &'static str, item: String },
    #[error("item {item:?} in {what} has an empty name")]
    EmptyName { what: &'static str, item: String },
    #[error("{what} item {name:?} has an empty value")]
    EmptyValue { what: &'static str, name: String },
    #[error(
        "resource {name:?} names a role ({role:?}); the dev cluster only has unreserved resources"
    )]
    Reserved { name: String, role: String },
    #[error("resource {name:?} has value {value:?}, which is not a non-negative number")]
    BadScalar { name: String, value: String },
    #[error(
        "{what} item {name:?} has range set {value:?}; expected e.g. [31000-32000,33000-33010]"
    )]
    BadRanges {
        what: &'static str,
        name: String,
        value: String,
    },
    #[error("{what} item {name:?} has set {value:?}; expected e.g. {{a,b}}")]
    BadSet {
        what: &'static str,
        name: String,
        value: String,
    },
    #[error("{what} item {name:?} appears more than once")]
    Duplicate { what: &'static str, name: String },
}

/// Parses `--resources`: `name:value` items separated by `;`. A value is a number (SCALAR, e.g.
/// `cpus`, `mem`, `disk`, `gpus`), a range set `[a-b,c-d]` (e.g. `ports`) or a set `{a,b}`.
pub fn parse_resources(s: &str) -> Result<Vec<pb::Resource>, ParseError> {
    const WHAT: &str = "resources";
    let mut out: Vec<pb::Resource> = Vec::new();
    for (name, value) in items(s, WHAT)? {
        if let Some((bare, role)) = name.split_once('(') {
            return Err(ParseError::Reserved {
                name: bare.to_owned(),
                role: role.trim_end_matches(')').to_owned(),
            });
        }
        if out.iter().any(|r| r.name == name) {
            return Err(ParseError::Duplicate { what: WHAT, name });
        }
        let mut resource = pb::Resource {
            name: name.clone(),
            ..Default::default()
        };
        if value.starts_with('[') {
            resource.r#type = ValueType::Ranges as i32;
            resource.ranges = Some(parse_ranges(&value).ok_or_else(|| ParseError::BadRanges {
                what: WHAT,
                name,
                value: value.clone(),
            })?);
        } else if value.starts_with('{') {
            resource.r#type = ValueType::Set as i32;
            resource.set = Some(parse_set(&value).ok_or_else(|| ParseError::BadSet {
                what: WHAT,
                name,
                value: value.clone(),
            })?);
        } else {
            let number = value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| ParseError::BadScalar {
                    name,
                    value: value.clone(),
                })?;
            resource.r#type = ValueType::Scalar as i32;
            resource.scalar = Some(pb::value::Scalar { value: number });
        }
        out.push(resource);
    }
    Ok(out)
}

/// Parses `--attributes`: `name:value` items separated by `;`, typed as Mesos types them.
pub fn parse_attributes(s: &str) -> Result<Vec<pb::Attribute>, ParseError> {
    const WHAT: &str = "attributes";
    let mut out: Vec<pb::Attribute> = Vec::new();
    for (name, value) in items(s, WHAT)? {
        if out.iter().any(|a| a.name == name) {
            return Err(ParseError::Duplicate { what: WHAT, name });
        }
        let mut attribute = pb::Attribute {
            name: name.clone(),
            ..Default::default()
        };
        if value.starts_with('[') {
            attribute.r#type = ValueType::Ranges as i32;
            attribute.ranges = Some(parse_ranges(&value).ok_or_else(|| ParseError::BadRanges {
                what: WHAT,
                name,
                value: value.clone(),
            })?);
        } else if value.starts_with('{') {
            attribute.r#type = ValueType::Set as i32;
            attribute.set = Some(parse_set(&value).ok_or_else(|| ParseError::BadSet {
                what: WHAT,
                name,
                value: value.clone(),
            })?);
        } else if let Some(number) = value.parse::<f64>().ok().filter(|v| v.is_finite()) {
            attribute.r#type = ValueType::Scalar as i32;
            attribute.scalar = Some(pb::value::Scalar { value: number });
        } else {
            attribute.r#type = ValueType::Text as i32;
            attribute.text = Some(pb::value::Text { value });
        }
        out.push(attribute);
    }
    Ok(out)
}

/// Splits `a:1;b:2` into trimmed `(name, value)` pairs; empty items (a trailing `;`) are skipped.
fn items(s: &str, what: &'static str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item
            .split_once(':')
            .ok_or_else(|| ParseError::MissingColon {
                what,
                item: item.to_owned(),
            })?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(ParseError::EmptyName {
                what,
                item: item.to_owned(),
            });
        }
        if value.is_empty() {
            return Err(ParseError::EmptyValue {
                what,
                name: name.to_owned(),
            });
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// `[a-b,c-d]` (spaces allowed) into ranges; `None` when malformed or `begin > end`.
fn parse_ranges(value: &str) -> Option<pb::value::Ranges> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?;
    let mut range = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (begin, end) = part.split_once('-')?;
        let begin: u64 = begin.trim().parse().ok()?;
        let end: u64 = end.trim().parse().ok()?;
        if begin > end {
            return None;
        }
        range.push(pb::value::Range { begin, end });
    }
    Some(pb::value::Ranges { range })
}

/// `{a,b}` into a set; `None` when the braces are missing.
fn parse_set(value: &str) -> Option<pb::value::Set> {
    let inner = value.strip_prefix('{')?.strip_suffix('}')?;
    let item = inner
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect();
    Some(pb::value::Set { item })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_the_default_agent() {
        let r = parse_resources("cpus:4;mem:8192;disk:20000;ports:[31000-32000];gpus:1").unwrap();
        let names: Vec<_> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["cpus", "mem", "disk", "ports", "gpus"]);
        assert_eq!(r[0].scalar.unwrap().value, 4.0);
        assert_eq!(r[3].r#type, ValueType::Ranges as i32);
        assert_eq!(
            r[3].ranges.as_ref().unwrap().range,
            [pb::value::Range {
                begin: 31000,
                end: 32000
            }]
        );
    }

    #[test]
    fn several_port_ranges() {
        let r = parse_resources("ports:[1-2, 5-9]").unwrap();
        assert_eq!(r[0].ranges.as_ref().unwrap().range.len(), 2);
    }

    #[test]
    fn bad_resources_say_what_is_wrong() {
        assert!(matches!(
            parse_resources("cpus=4"),
            Err(ParseError::MissingColon { .. })
        ));
        assert!(matches!(
            parse_resources("cpus:four"),
            Err(ParseError::BadScalar { .. })
        ));
        assert!(matches!(
            parse_resources("cpus:-1"),
            Err(ParseError::BadScalar { .. })
        ));
        assert!(matches!(
            parse_resources("ports:[9-1]"),
            Err(ParseError::BadRanges { .. })
        ));
        assert!(matches!(
            parse_resources("cpus(web):1"),
            Err(ParseError::Reserved { .. })
        ));
        assert!(matches!(
            parse_resources("cpus:1;cpus:2"),
            Err(ParseError::Duplicate { .. })
        ));
        let message = parse_resources("mem:lots").unwrap_err().to_string();
        assert!(
            message.contains("mem") && message.contains("lots"),
            "{message}"
        );
    }

    #[test]
    fn attributes_are_typed_as_mesos_types_them() {
        let a = parse_attributes("rack:r1;level:3;span:[1-4];tags:{a,b}").unwrap();
        assert_eq!(a[0].r#type, ValueType::Text as i32);
        assert_eq!(a[0].text.as_ref().unwrap().value, "r1");
        assert_eq!(a[1].r#type, ValueType::Scalar as i32);
        assert_eq!(a[1].scalar.unwrap().value, 3.0);
        assert_eq!(a[2].r#type, ValueType::Ranges as i32);
        assert_eq!(a[3].set.as_ref().unwrap().item, ["a", "b"]);
        assert!(parse_attributes("").unwrap().is_empty());
        assert!(matches!(
            parse_attributes("rack"),
            Err(ParseError::MissingColon { .. })
        ));
    }
}
