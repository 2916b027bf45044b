//! Stateless validation the master applies as upstream does: the scheduler Call itself (§3.1
//! step 8), FrameworkInfo on SUBSCRIBE/UPDATE_FRAMEWORK (§3.2), ids and roles. Task validation
//! needs the master's state and lives in `calls.rs`, using the id rule from here.

use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call};
use pb::framework_info::capability::Type as Capability;

use super::state::has_capability;

/// Upstream `NAME_MAX`: the longest id.
const NAME_MAX: usize = 255;

/// §3.1 step 8. The error text follows `Failed to validate scheduler::Call: `.
pub(super) fn call(call: &Call) -> Result<call::Type, String> {
    // An enum number this build does not know is an unknown field for proto2, i.e. absent.
    let Some(ty) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    let framework_id = call.framework_id.as_ref().map(|f| f.value.as_str());
    if ty == call::Type::Subscribe {
        let Some(subscribe) = &call.subscribe else {
            return Err("Expecting 'subscribe' to be present".to_owned());
        };
        let info_id = subscribe
            .framework_info
            .id
            .as_ref()
            .map(|f| f.value.as_str());
        if info_id.unwrap_or("") != framework_id.unwrap_or("") {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".to_owned());
        }
        return Ok(ty);
    }
    if framework_id.is_none() {
        return Err("Expecting 'framework_id' to be present".to_owned());
    }
    let missing = |name: &str| Err(format!("Expecting '{name}' to be present"));
    match ty {
        call::Type::Accept if call.accept.is_none() => missing("accept"),
        call::Type::Decline if call.decline.is_none() => missing("decline"),
        call::Type::AcceptInverseOffers if call.accept_inverse_offers.is_none() => {
            missing("accept_inverse_offers")
        }
        call::Type::DeclineInverseOffers if call.decline_inverse_offers.is_none() => {
            missing("decline_inverse_offers")
        }
        call::Type::Kill if call.kill.is_none() => missing("kill"),
        call::Type::Shutdown if call.shutdown.is_none() => missing("shutdown"),
        call::Type::Acknowledge => match &call.acknowledge {
            None => missing("acknowledge"),
            Some(ack) => uuid(&ack.uuid).map(|()| ty),
        },
        call::Type::AcknowledgeOperationStatus => match &call.acknowledge_operation_status {
            None => missing("acknowledge_operation_status"),
            Some(ack) => uuid(&ack.uuid).map(|()| ty),
        },
        call::Type::Reconcile if call.reconcile.is_none() => missing("reconcile"),
        call::Type::ReconcileOperations if call.reconcile_operations.is_none() => {
            missing("reconcile_operations")
        }
        call::Type::Message if call.message.is_none() => missing("message"),
        call::Type::Request if call.request.is_none() => missing("request"),
        call::Type::UpdateFramework => match &call.update_framework {
            None => missing("update_framework"),
            Some(update) => {
                let info_id = update.framework_info.id.as_ref().map(|f| f.value.as_str());
                if info_id.unwrap_or("") == framework_id.unwrap_or("") {
                    Ok(ty)
                } else {
                    Err(
                        "'framework_id' differs from 'update_framework.framework_info.id'"
                            .to_owned(),
                    )
                }
            }
        },
        _ => Ok(ty),
    }
}

/// A status-update uuid: exactly 16 bytes with a known RFC 4122 version (as boost's parser).
pub(super) fn uuid(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != 16 || !(1..=5).contains(&(bytes[6] >> 4)) {
        return Err("Not a valid UUID".to_owned());
    }
    Ok(())
}

/// Upstream `common::validation::validateID`, used for framework, task and executor ids.
pub(super) fn id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".to_owned());
    }
    if id.len() > NAME_MAX {
        return Err(format!("ID must not be greater than {NAME_MAX} characters"));
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(format!("'{id}' contains invalid characters"));
    }
    Ok(())
}

/// Upstream `roles::validate`: `*`, or `/`-separated non-empty components that are not `.` or
/// `..`, do not start with `-` and contain no whitespace, control characters or `*`.
pub(super) fn role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Empty role name is invalid".to_owned());
    }
    for component in role.split('/') {
        if component.is_empty() {
            return Err(format!(
                "Role '{role}' cannot contain an empty path component"
            ));
        }
        if component == "." || component == ".." {
            return Err(format!(
                "Role '{role}' cannot contain '.' or '..' components"
            ));
        }
        if component.starts_with('-') {
            return Err(format!("Role '{role}' cannot start with '-'"));
        }
        if component
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '*')
        {
            return Err(format!("Role '{role}' contains invalid characters"));
        }
    }
    Ok(())
}

/// FrameworkInfo checks whose failure the master reports as an ERROR event on SUBSCRIBE and as a
/// 400 on UPDATE_FRAMEWORK (§3.2).
pub(super) fn framework_info(
    info: &pb::FrameworkInfo,
    suppressed_roles: &[String],
) -> Result<(), String> {
    #[expect(deprecated, reason = "FrameworkInfo.role is part of what is validated")]
    let legacy_role = info.role.as_deref();
    let multi_role = has_capability(info, Capability::MultiRole);
    let roles: Vec<String> = if multi_role {
        if legacy_role.is_some() {
            return Err(
                "'FrameworkInfo.role' must not be present when the 'MULTI_ROLE' capability is set"
                    .to_owned(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for r in &info.roles {
            if !seen.insert(r.as_str()) {
                return Err(format!(
                    "'FrameworkInfo.roles' contains duplicate role '{r}'"
                ));
            }
        }
        info.roles.clone()
    } else {
        if !info.roles.is_empty() {
            return Err(
                "'FrameworkInfo.roles' must not be present when the 'MULTI_ROLE' capability is not set"
                    .to_owned(),
            );
        }
        vec![legacy_role.unwrap_or("*").to_owned()]
    };
    for r in &roles {
        role(r).map_err(|e| format!("Invalid role '{r}': {e}"))?;
    }
    if let Some(framework_id) = &info.id {
        id(&framework_id.value).map_err(|e| format!("'FrameworkInfo.id' is not valid: {e}"))?;
    }
    if let Some(timeout) = info.failover_timeout {
        // Upstream converts it to a Duration (int64 nanoseconds); what does not fit is refused.
        if !timeout.is_finite() || timeout.abs() * 1e9 >= i64::MAX as f64 {
            return Err(format!(
                "Invalid 'FrameworkInfo.failover_timeout': {timeout} cannot be converted to a duration"
            ));
        }
    }
    for (r, filters) in &info.offer_filters {
        let quantities = filters
            .min_allocatable_resources
            .iter()
            .flat_map(|m| &m.quantities)
            .flat_map(|q| &q.quantities);
        for (name, scalar) in quantities {
            if !scalar.value.is_finite() || scalar.value < 0.0 {
                return Err(format!(
                    "Invalid 'FrameworkInfo.offer_filters' for role '{r}': quantity of '{name}' must be a non-negative number"
                ));
            }
        }
    }
    for r in suppressed_roles {
        if !roles.contains(r) {
            return Err(format!(
                "Suppressed role '{r}' is not contained in the list of roles"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(roles: &[&str], multi: bool) -> pb::FrameworkInfo {
        pb::FrameworkInfo {
            user: "u".into(),
            name: "n".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            capabilities: if multi {
                vec![pb::framework_info::Capability {
                    r#type: Some(Capability::MultiRole as i32),
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    #[test]
    fn call_needs_type_and_framework_id() {
        let mut c = Call::default();
        assert_eq!(call(&c).unwrap_err(), "Expecting 'type' to be present");
        c.r#type = Some(99);
        assert_eq!(call(&c).unwrap_err(), "Expecting 'type' to be present");
        c.r#type = Some(call::Type::Revive as i32);
        assert_eq!(
            call(&c).unwrap_err(),
            "Expecting 'framework_id' to be present"
        );
        c.framework_id = Some(pb::FrameworkId { value: "f".into() });
        assert_eq!(call(&c), Ok(call::Type::Revive));
        c.r#type = Some(call::Type::Kill as i32);
        assert_eq!(call(&c).unwrap_err(), "Expecting 'kill' to be present");
        c.r#type = Some(call::Type::Unknown as i32);
        assert_eq!(call(&c), Ok(call::Type::Unknown));
    }

    #[test]
    fn subscribe_ids_must_agree() {
        let mut c = Call {
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                framework_info: info(&[], false),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(call(&c).is_ok());
        c.framework_id = Some(pb::FrameworkId { value: "f".into() });
        assert!(call(&c).unwrap_err().contains("differs"));
    }

    #[test]
    fn uuids_need_16_bytes_and_a_version() {
        let v4 = *uuid::Uuid::new_v4().as_bytes();
        assert!(uuid(&v4).is_ok());
        assert!(uuid(&v4[..15]).is_err());
        assert!(uuid(&[0u8; 16]).is_err());
    }

    #[test]
    fn ids_and_roles() {
        assert!(id("web.1").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\u{7}"] {
            assert!(id(bad).is_err(), "{bad:?}");
        }
        assert!(role("*").is_ok());
        assert!(role("eng/web").is_ok());
        for bad in ["", "-x", "a b", "a//b", "a/..", "x*"] {
            assert!(role(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn framework_info_roles_follow_multi_role() {
        assert!(framework_info(&info(&[], false), &[]).is_ok());
        assert!(framework_info(&info(&["a"], false), &[]).is_err());
        assert!(framework_info(&info(&["a", "b"], true), &["b".into()]).is_ok());
        assert!(framework_info(&info(&["a", "a"], true), &[]).is_err());
        assert!(framework_info(&info(&["a"], true), &["c".into()]).is_err());
        let mut huge = info(&[], false);
        huge.failover_timeout = Some(1e300);
        assert!(framework_info(&huge, &[]).is_err());
    }
}
