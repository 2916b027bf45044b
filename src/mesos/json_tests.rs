//! Unit tests of the JSON mapping: one or more per rule, on output and on input, and the
//! required-field checks.

use super::*;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, Event, call, event};

fn text<M: Message + Name>(msg: &M) -> String {
    String::from_utf8(to_vec(msg)).unwrap()
}

fn parse_err<M: Message + Name + Default + std::fmt::Debug>(json: &str) -> JsonError {
    from_slice::<M>(json.as_bytes()).unwrap_err()
}

// ---- output -----------------------------------------------------------------------------

#[test]
fn output_keys_follow_declaration_order_not_field_numbers() {
    // TaskStatus declares message(4), source(9), reason(10) before data(3).
    let status = pb::TaskStatus {
        task_id: pb::TaskId { value: "t".into() },
        state: pb::TaskState::TaskRunning as i32,
        message: Some("m".into()),
        source: Some(pb::task_status::Source::Agent as i32),
        data: Some(b"d".to_vec()),
        ..Default::default()
    };
    assert_eq!(
        text(&status),
        r#"{"task_id":{"value":"t"},"state":"TASK_RUNNING","message":"m","source":"SOURCE_AGENT","data":"ZA=="}"#
    );
}

#[test]
fn output_enums_by_name_and_unknown_numbers_as_numbers() {
    let known = Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    };
    assert_eq!(text(&known), r#"{"type":"HEARTBEAT"}"#);
    let unknown = Event {
        r#type: Some(99),
        ..Default::default()
    };
    assert_eq!(text(&unknown), r#"{"type":99}"#);
}

#[test]
fn output_64_bit_integers_are_plain_numbers() {
    let time = pb::TimeInfo {
        nanoseconds: 1_234_567_890_123_456_789,
    };
    assert_eq!(text(&time), r#"{"nanoseconds":1234567890123456789}"#);
    let range = pb::value::Range {
        begin: 31000,
        end: u64::MAX,
    };
    assert_eq!(
        text(&range),
        r#"{"begin":31000,"end":18446744073709551615}"#
    );
}

#[test]
fn output_doubles_always_have_a_fractional_part() {
    let cases = [
        (15.0, "15.0"),
        (0.5, "0.5"),
        (-0.0, "-0.0"),
        (1e20, "1.0e20"),
        (1.5e-7, "1.5e-7"),
        (31_536_000.0, "31536000.0"),
    ];
    for (x, want) in cases {
        let f = pb::Filters {
            refuse_seconds: Some(x),
        };
        assert_eq!(text(&f), format!(r#"{{"refuse_seconds":{want}}}"#), "{x}");
        let back: pb::Filters = from_slice(text(&f).as_bytes()).unwrap();
        assert_eq!(back.refuse_seconds.map(f64::to_bits), Some(x.to_bits()));
    }
    // serde_json prints a Value's float the same way for ordinary values.
    let value = to_value(&pb::Filters {
        refuse_seconds: Some(15.0),
    });
    assert_eq!(value.to_string(), r#"{"refuse_seconds":15.0}"#);
}

#[test]
fn output_non_finite_doubles_are_strings_and_parse_back() {
    for (x, want) in [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
    ] {
        let f = pb::Filters {
            refuse_seconds: Some(x),
        };
        assert_eq!(text(&f), format!(r#"{{"refuse_seconds":"{want}"}}"#));
        let back: pb::Filters = from_slice(text(&f).as_bytes()).unwrap();
        assert_eq!(back.refuse_seconds.map(f64::to_bits), Some(x.to_bits()));
    }
}

#[test]
fn output_bytes_are_standard_base64_with_padding() {
    let uuid = pb::Uuid {
        value: vec![0xfb, 0xff, 0x01, 0x02],
    };
    assert_eq!(text(&uuid), r#"{"value":"+/8BAg=="}"#);
}

#[test]
fn output_repeated_only_when_non_empty_and_maps_as_objects() {
    let empty = call::Reconcile { tasks: vec![] };
    assert_eq!(text(&empty), "{}");
    let set = pb::value::Set {
        item: vec!["a".into(), "b".into()],
    };
    assert_eq!(text(&set), r#"{"item":["a","b"]}"#);
    let quantities = pb::offer_filters::ResourceQuantities {
        quantities: [
            ("mem".to_owned(), pb::value::Scalar { value: 32.0 }),
            ("cpus".to_owned(), pb::value::Scalar { value: 0.5 }),
        ]
        .into(),
    };
    // Keys are sorted so the bytes do not depend on hash order.
    assert_eq!(
        text(&quantities),
        r#"{"quantities":{"cpus":{"value":0.5},"mem":{"value":32.0}}}"#
    );
}

#[test]
#[expect(
    deprecated,
    reason = "sets Resource.role to show a set deprecated field is written"
)]
fn output_emits_declared_defaults_but_not_deprecated_ones() {
    assert_eq!(text(&pb::Filters::default()), r#"{"refuse_seconds":5.0}"#);
    assert_eq!(text(&pb::CommandInfo::default()), r#"{"shell":true}"#);
    let framework = pb::FrameworkInfo {
        user: "u".into(),
        name: "n".into(),
        ..Default::default()
    };
    // No `"role":"*"`: that default is deprecated.
    assert_eq!(
        text(&framework),
        r#"{"user":"u","name":"n","failover_timeout":0.0,"checkpoint":false}"#
    );
    let resource = pb::Resource {
        name: "cpus".into(),
        r#type: pb::value::Type::Scalar as i32,
        scalar: Some(pb::value::Scalar { value: 1.0 }),
        ..Default::default()
    };
    assert_eq!(
        text(&resource),
        r#"{"name":"cpus","type":"SCALAR","scalar":{"value":1.0}}"#
    );
    let variable = pb::environment::Variable {
        name: "A".into(),
        value: Some("1".into()),
        ..Default::default()
    };
    assert_eq!(
        text(&variable),
        r#"{"name":"A","type":"VALUE","value":"1"}"#
    );
    // A set deprecated field is still written.
    let with_role = pb::Resource {
        role: Some("web".into()),
        ..resource
    };
    assert!(text(&with_role).contains(r#""role":"web""#));
}

#[test]
fn output_required_fields_always_present_even_at_zero() {
    let master = pb::MasterInfo {
        id: String::new(),
        ip: 0,
        ..Default::default()
    };
    assert_eq!(text(&master), r#"{"id":"","ip":0,"port":5050}"#);
    let value = pb::Value {
        r#type: pb::value::Type::Scalar as i32,
        ..Default::default()
    };
    assert_eq!(text(&value), r#"{"type":"SCALAR"}"#);
}

#[test]
fn output_escapes_strings() {
    let label = pb::Label {
        key: "q\"b\\n\nc\u{1}é".into(),
        value: None,
    };
    let out = text(&label);
    assert_eq!(out, "{\"key\":\"q\\\"b\\\\n\\nc\\u0001é\"}");
    let back: pb::Label = from_slice(out.as_bytes()).unwrap();
    assert_eq!(back, label);
}

// ---- input ------------------------------------------------------------------------------

#[test]
fn input_accepts_field_names_and_json_names_and_ignores_unknown_keys_and_nulls() {
    let framework: pb::FrameworkInfo = from_slice(
        br#"{"user":"u","name":"n","webuiUrl":"http://x","hostname":null,"future_field":[1,{"a":2}]}"#,
    )
    .unwrap();
    assert_eq!(framework.webui_url.as_deref(), Some("http://x"));
    assert_eq!(framework.hostname, None);
    // Parsing does not invent the declared defaults: presence stays as sent.
    assert_eq!(framework.failover_timeout, None);
}

#[test]
fn input_enums_by_name_or_number_and_unknown_names_dropped_when_optional() {
    let by_name: Call = from_slice(br#"{"type":"DECLINE"}"#).unwrap();
    assert_eq!(by_name.r#type, Some(call::Type::Decline as i32));
    let by_number: Call = from_slice(br#"{"type":4}"#).unwrap();
    assert_eq!(by_number.r#type, Some(call::Type::Decline as i32));
    let unknown: Call = from_slice(br#"{"type":"SOMETHING_NEW"}"#).unwrap();
    assert_eq!(unknown.r#type, None);
    let capability: pb::framework_info::Capability =
        from_slice(br#"{"type":"TELEPATHY"}"#).unwrap();
    assert_eq!(capability.r#type, None);
}

#[test]
fn input_unknown_enum_name_in_a_required_field_is_an_error() {
    let err = parse_err::<pb::Value>(r#"{"type":"MATRIX"}"#);
    assert_eq!(err.path(), "Value.type");
    assert!(err.to_string().contains("MATRIX"), "{err}");
}

#[test]
fn input_integers_accept_numbers_and_numeric_strings() {
    let range: pb::value::Range =
        from_slice(br#"{"begin":"31000","end":18446744073709551615}"#).unwrap();
    assert_eq!((range.begin, range.end), (31000, u64::MAX));
    let time: pb::TimeInfo = from_slice(br#"{"nanoseconds":"-5"}"#).unwrap();
    assert_eq!(time.nanoseconds, -5);
    let integral_float: pb::TimeInfo = from_slice(br#"{"nanoseconds":7.0}"#).unwrap();
    assert_eq!(integral_float.nanoseconds, 7);
}

#[test]
fn input_integers_reject_fractions_garbage_and_out_of_range_naming_the_field() {
    for (json, path) in [
        (r#"{"id":"m","ip":1.5,"port":1}"#, "MasterInfo.ip"),
        (r#"{"id":"m","ip":"x","port":1}"#, "MasterInfo.ip"),
        (r#"{"id":"m","ip":-1,"port":1}"#, "MasterInfo.ip"),
        (r#"{"id":"m","ip":1,"port":4294967296}"#, "MasterInfo.port"),
        (r#"{"id":"m","ip":true,"port":1}"#, "MasterInfo.ip"),
    ] {
        let err = parse_err::<pb::MasterInfo>(json);
        assert_eq!(err.path(), path, "{json}: {err}");
    }
    let err = parse_err::<pb::TimeInfo>(r#"{"nanoseconds":"9223372036854775808"}"#);
    assert!(err.reason().contains("out of range"), "{err}");
}

#[test]
fn input_doubles_accept_numbers_strings_and_infinities() {
    for (json, want) in [
        (r#"{"refuse_seconds":1}"#, 1.0),
        (r#"{"refuse_seconds":2.5}"#, 2.5),
        (r#"{"refuse_seconds":"3.25"}"#, 3.25),
        (r#"{"refuse_seconds":"Infinity"}"#, f64::INFINITY),
        (r#"{"refuse_seconds":"-Infinity"}"#, f64::NEG_INFINITY),
    ] {
        let f: pb::Filters = from_slice(json.as_bytes()).unwrap();
        assert_eq!(f.refuse_seconds, Some(want), "{json}");
    }
    let nan: pb::Filters = from_slice(br#"{"refuse_seconds":"NaN"}"#).unwrap();
    assert!(nan.refuse_seconds.unwrap().is_nan());
    let err = parse_err::<Call>(r#"{"decline":{"filters":{"refuse_seconds":"soon"}}}"#);
    assert_eq!(err.path(), "Call.decline.filters.refuse_seconds");
}

#[test]
fn input_bytes_accept_padded_and_unpadded_base64() {
    let padded: pb::Uuid = from_slice(br#"{"value":"YWI="}"#).unwrap();
    let unpadded: pb::Uuid = from_slice(br#"{"value":"YWI"}"#).unwrap();
    assert_eq!(padded.value, b"ab");
    assert_eq!(unpadded.value, b"ab");
    let err = parse_err::<pb::Uuid>(r#"{"value":"not base64!"}"#);
    assert_eq!(err.path(), "UUID.value");
}

#[test]
fn input_type_mismatches_name_the_field() {
    let err = parse_err::<Call>(r#"{"subscribe":"yes"}"#);
    assert_eq!(err.path(), "Call.subscribe");
    let err = parse_err::<Call>(r#"{"type":["SUBSCRIBE"]}"#);
    assert_eq!(err.path(), "Call.type");
    let err = parse_err::<Call>(r#"[]"#);
    assert_eq!(err.path(), "Call");
    let err = parse_err::<Call>(r#"{"type":"#);
    assert!(err.reason().starts_with("malformed json"), "{err}");
}

#[test]
fn input_a_lone_value_for_a_repeated_field_is_one_element() {
    let revive: call::Revive = from_slice(br#"{"roles":"web"}"#).unwrap();
    assert_eq!(revive.roles, vec!["web".to_owned()]);
}

#[test]
fn input_maps_are_objects() {
    let task: pb::TaskInfo = from_slice(
        br#"{"name":"n","task_id":{"value":"t"},"agent_id":{"value":"a"},"limits":{"cpus":{"value":2}}}"#,
    )
    .unwrap();
    assert_eq!(task.limits["cpus"].value, 2.0);
}

#[test]
fn input_missing_required_field_is_an_error_naming_its_path() {
    let err =
        parse_err::<Call>(r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}}"#);
    assert_eq!(err.path(), "Call.subscribe.framework_info.name");
    assert_eq!(
        err.to_string(),
        "required field is missing at Call.subscribe.framework_info.name"
    );
    let err = parse_err::<Call>(
        r#"{"accept":{"operations":[{"type":"LAUNCH","launch":{"task_infos":[
            {"name":"a","task_id":{"value":"a"},"agent_id":{"value":"s"}},
            {"name":"b","task_id":{"value":"b"}}]}}]}}"#,
    );
    assert_eq!(
        err.path(),
        "Call.accept.operations[0].launch.task_infos[1].agent_id"
    );
}

// ---- required-field check on protobuf bytes -----------------------------------------------

#[test]
fn missing_required_field_reads_the_bytes() {
    // Call{type: SUBSCRIBE, subscribe: {framework_info: {user: "u"}}}, written by hand because
    // prost always encodes required fields.
    let bytes = [0x10, 0x01, 0x1a, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'u'];
    assert_eq!(
        missing_required_field::<Call>(&bytes).unwrap().as_deref(),
        Some("Call.subscribe.framework_info.name")
    );
    let complete = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: pb::FrameworkInfo {
                user: "u".into(),
                name: "n".into(),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        missing_required_field::<Call>(&complete.encode_to_vec()).unwrap(),
        None
    );
    assert!(missing_required_field::<Call>(&[0xff, 0xff]).is_err());
}

#[test]
fn missing_required_field_json_separates_missing_from_malformed() {
    let missing = serde_json::json!({"subscribe": {"framework_info": {"name": "n"}}});
    assert_eq!(
        missing_required_field_json::<Call>(&missing)
            .unwrap()
            .as_deref(),
        Some("Call.subscribe.framework_info.user")
    );
    let complete = serde_json::json!({"subscribe": {"framework_info": {"user": "u", "name": "n"}}});
    assert_eq!(
        missing_required_field_json::<Call>(&complete).unwrap(),
        None
    );
    let malformed = serde_json::json!({"subscribe": {"framework_info": {"user": 7}}});
    let err = missing_required_field_json::<Call>(&malformed).unwrap_err();
    assert_eq!(err.path(), "Call.subscribe.framework_info.user");
}

#[test]
fn missing_required_field_looks_inside_maps() {
    // FrameworkInfo{user, name, offer_filters: {"web": {min_allocatable_resources:
    // {quantities: [{quantities: {"cpus": Scalar{}}}]}}}}: the Scalar lacks `value`.
    let scalar_entry = [0x0a, 0x04, b'c', b'p', b'u', b's', 0x12, 0x00];
    let mut quantities = vec![0x0a, scalar_entry.len() as u8];
    quantities.extend(scalar_entry);
    let mut min = vec![0x0a, quantities.len() as u8];
    min.extend(quantities);
    let mut filters = vec![0x0a, min.len() as u8];
    filters.extend(min);
    let mut entry = vec![0x0a, 0x03, b'w', b'e', b'b', 0x12, filters.len() as u8];
    entry.extend(filters);
    let mut bytes = vec![0x0a, 0x01, b'u', 0x12, 0x01, b'n', 0x6a, entry.len() as u8];
    bytes.extend(entry);
    assert_eq!(
        missing_required_field::<pb::FrameworkInfo>(&bytes)
            .unwrap()
            .as_deref(),
        Some(
            r#"FrameworkInfo.offer_filters["web"].min_allocatable_resources.quantities[0].quantities["cpus"].value"#
        )
    );
}

#[test]
fn regression_doubles_read_back_exactly_as_written() {
    // Found by the `client_json` fuzz target: serde_json's default float parsing read this
    // timestamp back one unit in the last place off, so a status's JSON was not stable.
    let json =
        r#"{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":1.7044444444444445e22}"#;
    let status: pb::TaskStatus = from_slice(json.as_bytes()).unwrap();
    assert_eq!(status.timestamp, Some(1.704_444_444_444_444_5e22));
    let again: pb::TaskStatus = from_slice(&to_vec(&status)).unwrap();
    assert_eq!(again.timestamp, status.timestamp);
}
