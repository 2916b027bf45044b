//! Resource arithmetic for the master's bookkeeping: what an agent has, what its tasks use, what is
//! offered, whether a task fits in its offers.
//!
//! Scalars are kept in thousandths (fixed point), as Mesos does since 1.x, so that adding and
//! subtracting `0.1` a thousand times comes back to exactly zero. Everything here is unreserved:
//! the dev cluster has no reservations, so a resource carrying a role other than `*` or a
//! reservation stack is noted as `foreign` and can never be contained in an offer.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::mesos::proto::v1 as pb;
use pb::value::Type as ValueType;

/// A bag of unreserved resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    /// Name -> thousandths (never zero: empty entries are removed).
    scalars: Scalars,
    /// Name -> sorted, merged, inclusive ranges (never empty).
    ranges: BTreeMap<String, Vec<(u64, u64)>>,
    /// Name -> items (never empty).
    sets: BTreeMap<String, BTreeSet<String>>,
    /// Resources this master cannot offer (reserved, persistent volumes, provider resources):
    /// their presence makes `contains` fail, as their absence from every offer would upstream.
    foreign: Vec<String>,
}

/// A resource that is malformed in itself (upstream's `Resources::validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resource {name:?}: {reason}")]
pub(crate) struct InvalidResource {
    pub name: String,
    pub reason: String,
}

impl Resources {
    /// Adds up wire resources, validating each one.
    pub(crate) fn from_pb(list: &[pb::Resource]) -> Result<Self, InvalidResource> {
        let mut out = Resources::default();
        for r in list {
            out.add_one(r)?;
        }
        Ok(out)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.scalars.is_empty()
            && self.ranges.is_empty()
            && self.sets.is_empty()
            && self.foreign.is_empty()
    }

    /// The value of a scalar, e.g. `cpus`, as a double (0 when absent).
    pub(crate) fn scalar(&self, name: &str) -> f64 {
        self.scalars.get(name).map_or(0.0, |m| from_milli(*m))
    }

    /// Whether every resource of `other` is also in `self`.
    pub(crate) fn contains(&self, other: &Resources) -> bool {
        other.foreign.is_empty()
            && other
                .scalars
                .iter()
                .all(|(n, v)| self.scalars.get(n).is_some_and(|mine| mine >= v))
            && other.ranges.iter().all(|(n, theirs)| {
                self.ranges
                    .get(n)
                    .is_some_and(|mine| theirs.iter().all(|r| range_covered(mine, *r)))
            })
            && other
                .sets
                .iter()
                .all(|(n, theirs)| self.sets.get(n).is_some_and(|mine| theirs.is_subset(mine)))
    }

    pub(crate) fn add(&mut self, other: &Resources) {
        for (n, v) in other.scalars.iter() {
            self.scalars.add(n, *v);
        }
        for (n, rs) in &other.ranges {
            let entry = self.ranges.entry(n.clone()).or_default();
            entry.extend(rs.iter().copied());
            *entry = normalize(std::mem::take(entry));
        }
        for (n, items) in &other.sets {
            self.sets
                .entry(n.clone())
                .or_default()
                .extend(items.iter().cloned());
        }
        self.foreign.extend(other.foreign.iter().cloned());
        self.prune();
    }

    /// Removes `other` from `self`, saturating at empty (callers only subtract what they added).
    pub(crate) fn subtract(&mut self, other: &Resources) {
        for (n, v) in other.scalars.iter() {
            if let Some(mine) = self.scalars.get_mut(n) {
                *mine = (*mine - v).max(0);
            }
        }
        for (n, rs) in &other.ranges {
            if let Some(mine) = self.ranges.get_mut(n) {
                for r in rs {
                    *mine = remove_range(mine, *r);
                }
            }
        }
        for (n, items) in &other.sets {
            if let Some(mine) = self.sets.get_mut(n) {
                for i in items {
                    mine.remove(i);
                }
            }
        }
        self.prune();
    }

    /// The scalars by name, in name order (upstream's `ResourceQuantities`, as `/master/roles`
    /// shows them).
    pub(crate) fn quantities(&self) -> Vec<(&str, f64)> {
        self.scalars
            .iter()
            .map(|(n, v)| (n, from_milli(*v)))
            .collect()
    }

    /// `self - other` as a new value.
    pub(crate) fn minus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Wire resources in the shape a framework expects: `role` is `"*"` for the old format
    /// (frameworks without RESERVATION_REFINEMENT, as upstream's downgrade writes it) and absent
    /// with the new one; `allocation_info` only for MULTI_ROLE frameworks.
    pub(crate) fn to_pb(&self, format: &WireFormat) -> Vec<pb::Resource> {
        let mut out = Vec::new();
        let base = |name: &str, ty: ValueType| {
            #[expect(
                deprecated,
                reason = "the old resource format is what pre-refinement frameworks read"
            )]
            let resource = pb::Resource {
                name: name.to_owned(),
                r#type: ty as i32,
                role: (!format.refinement).then(|| "*".to_owned()),
                allocation_info: format.allocation_role.as_ref().map(|role| {
                    pb::resource::AllocationInfo {
                        role: Some(role.clone()),
                    }
                }),
                ..Default::default()
            };
            resource
        };
        for (n, v) in self.scalars.iter() {
            let mut r = base(n, ValueType::Scalar);
            r.scalar = Some(pb::value::Scalar {
                value: from_milli(*v),
            });
            out.push(r);
        }
        for (n, rs) in &self.ranges {
            let mut r = base(n, ValueType::Ranges);
            r.ranges = Some(pb::value::Ranges {
                range: rs
                    .iter()
                    .map(|(begin, end)| pb::value::Range {
                        begin: *begin,
                        end: *end,
                    })
                    .collect(),
            });
            out.push(r);
        }
        for (n, items) in &self.sets {
            let mut r = base(n, ValueType::Set);
            r.set = Some(pb::value::Set {
                item: items.iter().cloned().collect(),
            });
            out.push(r);
        }
        out
    }

    /// The object `/master/state` shows for resources: cpus, mem, disk and gpus always (0 when
    /// absent), every other scalar as a number, ranges as `"[a-b, c-d]"`, sets as `"{a, b}"`;
    /// keys in name order, a set shadowing a range shadowing a scalar of the same name.
    pub(crate) fn write_state_json(&self, out: &mut Vec<u8>) {
        enum Entry<'a> {
            Scalar(f64),
            Ranges(&'a [(u64, u64)]),
            Set(&'a BTreeSet<String>),
        }
        // (name, precedence, value), sorted; the last of equal names wins.
        let mut entries: Vec<(&str, u8, Entry<'_>)> = ["cpus", "disk", "gpus", "mem"]
            .into_iter()
            .map(|n| (n, 0, Entry::Scalar(self.scalar(n))))
            .collect();
        entries.extend(
            self.scalars
                .iter()
                .map(|(n, v)| (n, 1, Entry::Scalar(from_milli(*v)))),
        );
        entries.extend(
            self.ranges
                .iter()
                .map(|(n, rs)| (n.as_str(), 2, Entry::Ranges(rs))),
        );
        entries.extend(
            self.sets
                .iter()
                .map(|(n, s)| (n.as_str(), 3, Entry::Set(s))),
        );
        entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out.push(b'{');
        let mut first = true;
        for (i, (name, _, entry)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = match entry {
                Entry::Scalar(v) => serde_json::to_writer(&mut *out, v),
                Entry::Ranges(rs) => serde_json::to_writer(&mut *out, &ranges_text(rs)),
                Entry::Set(items) => {
                    let joined: Vec<&str> = items.iter().map(String::as_str).collect();
                    serde_json::to_writer(&mut *out, &format!("{{{}}}", joined.join(", ")))
                }
            };
        }
        out.push(b'}');
    }

    /// [`Resources::write_state_json`] as a `serde_json::Value`, to check it against.
    #[cfg(test)]
    pub(crate) fn to_state_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for name in ["cpus", "disk", "gpus", "mem"] {
            map.insert(name.to_owned(), serde_json::json!(self.scalar(name)));
        }
        for (n, v) in self.scalars.iter() {
            map.insert(n.to_owned(), serde_json::json!(from_milli(*v)));
        }
        for (n, rs) in &self.ranges {
            map.insert(n.clone(), serde_json::Value::String(ranges_text(rs)));
        }
        for (n, items) in &self.sets {
            let joined: Vec<&str> = items.iter().map(String::as_str).collect();
            map.insert(
                n.clone(),
                serde_json::Value::String(format!("{{{}}}", joined.join(", "))),
            );
        }
        serde_json::Value::Object(map)
    }

    fn add_one(&mut self, r: &pb::Resource) -> Result<(), InvalidResource> {
        let invalid = |reason: &str| InvalidResource {
            name: r.name.clone(),
            reason: reason.to_owned(),
        };
        if r.name.is_empty() {
            return Err(invalid("empty name"));
        }
        #[expect(deprecated, reason = "the old reservation format is still on the wire")]
        let role = r.role.as_deref().unwrap_or("*");
        let unreserved = role == "*"
            && r.reservation.is_none()
            && r.reservations.is_empty()
            && r.disk.is_none()
            && r.provider_id.is_none()
            && r.revocable.is_none()
            && r.shared.is_none();
        match ValueType::try_from(r.r#type) {
            Ok(ValueType::Scalar) => {
                let value = r
                    .scalar
                    .map(|s| s.value)
                    .ok_or_else(|| invalid("SCALAR without a scalar value"))?;
                if !value.is_finite() || value < 0.0 {
                    return Err(invalid("scalar must be finite and non-negative"));
                }
                if r.ranges.is_some() || r.set.is_some() {
                    return Err(invalid("SCALAR with ranges or set"));
                }
                let milli = to_milli(value);
                if milli == 0 {
                    return Ok(());
                }
                if !unreserved {
                    self.foreign.push(r.name.clone());
                    return Ok(());
                }
                self.scalars.add(&r.name, milli);
            }
            Ok(ValueType::Ranges) => {
                let ranges = r
                    .ranges
                    .as_ref()
                    .ok_or_else(|| invalid("RANGES without ranges"))?;
                let mut list = Vec::new();
                for range in &ranges.range {
                    if range.begin > range.end {
                        return Err(invalid("range with begin after end"));
                    }
                    list.push((range.begin, range.end));
                }
                let total: u64 = list.iter().map(|(b, e)| e - b + 1).sum();
                let merged = normalize(list);
                if merged.iter().map(|(b, e)| e - b + 1).sum::<u64>() != total {
                    return Err(invalid("overlapping ranges"));
                }
                if merged.is_empty() {
                    return Ok(());
                }
                if !unreserved {
                    self.foreign.push(r.name.clone());
                    return Ok(());
                }
                let entry = self.ranges.entry(r.name.clone()).or_default();
                entry.extend(merged);
                *entry = normalize(std::mem::take(entry));
            }
            Ok(ValueType::Set) => {
                let set = r.set.as_ref().ok_or_else(|| invalid("SET without a set"))?;
                let items: BTreeSet<String> = set.item.iter().cloned().collect();
                if items.len() != set.item.len() {
                    return Err(invalid("duplicate set items"));
                }
                if items.is_empty() {
                    return Ok(());
                }
                if !unreserved {
                    self.foreign.push(r.name.clone());
                    return Ok(());
                }
                self.sets.entry(r.name.clone()).or_default().extend(items);
            }
            Ok(ValueType::Text) | Err(_) => return Err(invalid("unsupported resource type")),
        }
        Ok(())
    }

    fn prune(&mut self) {
        self.scalars.retain(|v| v > 0);
        self.ranges.retain(|_, v| !v.is_empty());
        self.sets.retain(|_, v| !v.is_empty());
    }
}

/// Scalar resources by name, as a vector sorted by name: a task's `cpus` and `mem` take one small
/// allocation (a `BTreeMap` node takes some 370 bytes whatever it holds), and the common names
/// are not allocated at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Scalars(Vec<(Cow<'static, str>, i64)>);

impl Scalars {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name))
    }

    fn get(&self, name: &str) -> Option<&i64> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut i64> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Adds `value` to the named scalar, creating it at zero first.
    fn add(&mut self, name: &str, value: i64) {
        match self.find(name) {
            Ok(i) => self.0[i].1 += value,
            Err(i) => {
                let name = match name {
                    "cpus" => Cow::Borrowed("cpus"),
                    "mem" => Cow::Borrowed("mem"),
                    "disk" => Cow::Borrowed("disk"),
                    "gpus" => Cow::Borrowed("gpus"),
                    other => Cow::Owned(other.to_owned()),
                };
                self.0.reserve_exact(1);
                self.0.insert(i, (name, value));
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        self.0.retain(|(_, v)| keep(*v));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In name order.
    fn iter(&self) -> impl Iterator<Item = (&str, &i64)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }
}

/// How resources are written for one framework (see [`Resources::to_pb`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct WireFormat {
    /// The framework has RESERVATION_REFINEMENT: no `role` field.
    pub refinement: bool,
    /// The framework has MULTI_ROLE: every resource carries `allocation_info{role}`.
    pub allocation_role: Option<String>,
}

impl fmt::Display for Resources {
    /// `cpus:0.1; mem:32; ports:[31000-31000]`, close to Mesos's own text form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (n, v) in self.scalars.iter() {
            parts.push(format!("{n}:{}", from_milli(*v)));
        }
        for (n, rs) in &self.ranges {
            parts.push(format!("{n}:{}", ranges_text(rs)));
        }
        for (n, items) in &self.sets {
            let joined: Vec<&str> = items.iter().map(String::as_str).collect();
            parts.push(format!("{n}:{{{}}}", joined.join(", ")));
        }
        for n in &self.foreign {
            parts.push(format!("{n}(reserved)"));
        }
        if parts.is_empty() {
            f.write_str("{}")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

fn to_milli(v: f64) -> i64 {
    // Values are validated finite and non-negative; the cast saturates on absurd sizes.
    (v * 1000.0).round() as i64
}

fn from_milli(m: i64) -> f64 {
    m as f64 / 1000.0
}

fn ranges_text(rs: &[(u64, u64)]) -> String {
    let parts: Vec<String> = rs.iter().map(|(b, e)| format!("{b}-{e}")).collect();
    format!("[{}]", parts.join(", "))
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalize(mut list: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    list.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(list.len());
    for (b, e) in list {
        match out.last_mut() {
            Some(last) if b <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((b, e)),
        }
    }
    out
}

fn range_covered(mine: &[(u64, u64)], (b, e): (u64, u64)) -> bool {
    mine.iter().any(|(mb, me)| *mb <= b && e <= *me)
}

fn remove_range(mine: &[(u64, u64)], (b, e): (u64, u64)) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(mine.len() + 1);
    for &(mb, me) in mine {
        if me < b || mb > e {
            out.push((mb, me));
            continue;
        }
        if mb < b {
            out.push((mb, b - 1));
        }
        if me > e {
            out.push((e + 1, me));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devcluster::master::parse::parse_resources;

    fn res(s: &str) -> Resources {
        Resources::from_pb(&parse_resources(s).unwrap()).unwrap()
    }

    #[test]
    fn fixed_point_scalars_return_to_zero() {
        let mut total = res("cpus:1");
        let tenth = res("cpus:0.1");
        for _ in 0..10 {
            assert!(total.contains(&tenth));
            total.subtract(&tenth);
        }
        assert!(total.is_empty(), "{total}");
    }

    #[test]
    fn ranges_split_and_merge() {
        let mut total = res("ports:[31000-31010]");
        let one = res("ports:[31005-31005]");
        total.subtract(&one);
        assert_eq!(total.to_string(), "ports:[31000-31004, 31006-31010]");
        assert!(!total.contains(&one));
        total.add(&one);
        assert_eq!(total, res("ports:[31000-31010]"));
    }

    #[test]
    fn containment_needs_every_part() {
        let offer = res("cpus:1;mem:128;ports:[1-10]");
        assert!(offer.contains(&res("cpus:0.5;mem:128;ports:[2-3]")));
        assert!(!offer.contains(&res("cpus:1.5")));
        assert!(!offer.contains(&res("ports:[10-11]")));
        assert!(!offer.contains(&res("gpus:1")));
    }

    #[test]
    fn reserved_resources_never_fit() {
        #[expect(deprecated, reason = "testing the old reservation format")]
        let reserved = pb::Resource {
            name: "cpus".into(),
            r#type: 0,
            scalar: Some(pb::value::Scalar { value: 1.0 }),
            role: Some("web".into()),
            ..Default::default()
        };
        let r = Resources::from_pb(&[reserved]).unwrap();
        assert!(!r.is_empty());
        assert!(!res("cpus:8").contains(&r));
    }

    #[test]
    fn invalid_resources_are_refused() {
        let bad = pb::Resource {
            name: "cpus".into(),
            r#type: 0,
            scalar: Some(pb::value::Scalar { value: -1.0 }),
            ..Default::default()
        };
        assert!(Resources::from_pb(&[bad]).is_err());
        let overlapping = pb::Resource {
            name: "ports".into(),
            r#type: 1,
            ranges: Some(pb::value::Ranges {
                range: vec![
                    pb::value::Range { begin: 1, end: 5 },
                    pb::value::Range { begin: 4, end: 6 },
                ],
            }),
            ..Default::default()
        };
        assert!(Resources::from_pb(&[overlapping]).is_err());
    }

    #[test]
    fn state_json_always_has_the_four_scalars() {
        let v = res("cpus:0.1;mem:32;ports:[31000-31000]").to_state_json();
        assert_eq!(
            v,
            serde_json::json!({"cpus":0.1,"mem":32.0,"disk":0.0,"gpus":0.0,"ports":"[31000-31000]"})
        );
    }

    #[test]
    fn wire_format_follows_capabilities() {
        let r = res("cpus:1");
        #[expect(deprecated, reason = "checking the old format's role")]
        {
            let old = r.to_pb(&WireFormat::default());
            assert_eq!(old[0].role.as_deref(), Some("*"));
            assert!(old[0].allocation_info.is_none());
            let new = r.to_pb(&WireFormat {
                refinement: true,
                allocation_role: Some("web".into()),
            });
            assert_eq!(new[0].role, None);
            assert_eq!(
                new[0].allocation_info.as_ref().unwrap().role.as_deref(),
                Some("web")
            );
        }
    }

    #[test]
    fn state_json_written_as_the_value() {
        let mut shadowed = res("cpus:2;mem:512;ports:[31000-31005, 31010-31010];foo:3");
        shadowed.sets.insert(
            "foo".to_owned(),
            ["b".to_owned(), "a".to_owned()].into_iter().collect(),
        );
        for r in [
            Resources::default(),
            res("cpus:0.1;mem:32"),
            res("cpus:2;gpus:1;mem:512;disk:100;ports:[31000-31005]"),
            shadowed,
        ] {
            let mut out = Vec::new();
            r.write_state_json(&mut out);
            let written: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(written, r.to_state_json(), "{r}");
        }
    }
}
