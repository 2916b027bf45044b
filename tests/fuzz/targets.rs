//! The fuzz targets themselves: one function per parser, input bytes in, the outcome (or the
//! broken property) out. No harness here, so that the stable-toolchain fuzzer of `engine.rs` and
//! libFuzzer (`fuzz/fuzz_targets/`, `cargo fuzz run --sanitizer none`) run the very same code.

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{Event, Response};
use mesos_reconciler::mesos::{convert, json, recordio};
use mesos_reconciler::spec::{SpecId, SpecPolicy};

/// What a target did with an input: `Ok(outcome)`, or `Err(why)` when a property broke.
pub type Verdict = Result<String, String>;

/// TOML bytes through the directory reader (UTF-8, parse, validate, under a user policy): never
/// a panic, and every error has a line and a column inside the file.
pub fn spec(input: &[u8]) -> Verdict {
    let id = SpecId::new("team-a/web").expect("a valid id");
    let policy = SpecPolicy {
        allowed_users: Some(["nobody".to_owned()].into()),
        ..SpecPolicy::default()
    };
    let parsed = mesos_reconciler::spec::dir::parse_bytes(
        &id,
        "desired/team-a/web.toml",
        input.to_vec(),
        &policy,
    );
    match parsed {
        Ok(spec) => {
            let _ = spec.content_hash();
            Ok("ok".to_owned())
        }
        Err(e) => {
            let lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
            let line = lines
                .get(e.line.wrapping_sub(1))
                .ok_or_else(|| format!("line {} of {} lines: {e}", e.line, lines.len()))?;
            let width = String::from_utf8_lossy(line).chars().count();
            if e.column == 0 || e.column > width + 1 {
                return Err(format!(
                    "column {} of a {width}-character line: {e}",
                    e.column
                ));
            }
            // The field's first part only: `labels.<any key>` is one outcome.
            let field = e.field.split(['.', '[']).next().unwrap_or_default();
            Ok(outcome(&format!("{field}: {}", e.message)))
        }
    }
}

/// Arbitrary bytes in arbitrary chunks (the first byte picks the sizes): the same records and
/// the same error however the stream is cut, and no record over the limit.
pub fn recordio(input: &[u8]) -> Verdict {
    const MAX: usize = 64;
    let drain = |decoder: &mut recordio::Decoder, records: &mut Vec<Vec<u8>>| loop {
        match decoder.next_record() {
            Ok(Some(record)) => records.push(record.to_vec()),
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    };
    let mut whole = recordio::Decoder::new(MAX);
    let mut expected = Vec::new();
    whole.feed(input);
    let expected_error = drain(&mut whole, &mut expected);

    let mut chunked = recordio::Decoder::new(MAX);
    let mut records = Vec::new();
    let mut error = None;
    let mut rest = input;
    let mut size = usize::from(input.first().copied().unwrap_or(1) % 7) + 1;
    while !rest.is_empty() && error.is_none() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunked.feed(chunk);
        error = drain(&mut chunked, &mut records);
        rest = tail;
        size = size % 5 + 1;
    }
    if records != expected || error != expected_error {
        return Err(format!(
            "chunked: {records:?} {error:?}; whole: {expected:?} {expected_error:?}"
        ));
    }
    if let Some(long) = records.iter().find(|r| r.len() > MAX) {
        return Err(format!(
            "a record of {} bytes over the {MAX} limit",
            long.len()
        ));
    }
    Ok(format!(
        "{} records, {}",
        records.len(),
        outcome(&format!("{error:?}"))
    ))
}

/// Events in protobuf: never a panic, whatever the bytes; what decodes converts and encodes.
pub fn event_protobuf(input: &[u8]) -> Verdict {
    match Encoding::Protobuf.decode::<Event>(input) {
        Ok(event) => {
            read_event(&event);
            let _ = json::to_vec(&event);
            Ok(format!("ok {:?}", event.r#type))
        }
        Err(e) => Ok(outcome(&e.to_string())),
    }
}

/// Events in JSON: never a panic; what decodes converts, and its JSON encoding reads back to an
/// encoding that is the same (the mapping is stable).
pub fn event_json(input: &[u8]) -> Verdict {
    match Encoding::Json.decode::<Event>(input) {
        Ok(event) => {
            read_event(&event);
            stable_json(&event)?;
            Ok(format!("ok {:?}", event.r#type))
        }
        Err(e) => Ok(outcome(&e.to_string())),
    }
}

/// The JSON of the other messages the client reads: scheduler `Response`s, `TaskStatus` and
/// `Offer` on their own, and `/master/frameworks` (the first byte picks which).
pub fn client_json(input: &[u8]) -> Verdict {
    let Some((&which, body)) = input.split_first() else {
        return Ok("empty".to_owned());
    };
    let result = match which % 4 {
        0 => json::from_slice::<Response>(body).map(|m| stable_json(&m)),
        1 => json::from_slice::<pb::TaskStatus>(body).map(|m| {
            let _ = convert::update_from_wire(&m);
            stable_json(&m)
        }),
        2 => json::from_slice::<pb::Offer>(body).map(|m| {
            let _ = convert::offer_from_wire(&m);
            stable_json(&m)
        }),
        _ => {
            return Ok(
                match mesos_reconciler::mesos::operator::parse_frameworks(body) {
                    Ok(list) => format!("frameworks {}", list.len().min(3)),
                    Err(e) => outcome(&format!("frameworks: {e}")),
                },
            );
        }
    };
    match result {
        Ok(stable) => stable.map(|()| format!("{} ok", which % 4)),
        Err(e) => Ok(outcome(&format!("{}: {e}", which % 4))),
    }
}

/// An outcome without what the input put in it: numbers, and anything quoted, backticked or
/// bracketed, so that "line 3" and "line 4", or two unknown keys, count as one.
pub fn outcome(text: &str) -> String {
    let mut shape = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                shape.push(c);
            }
            (Some(_), _) => {}
            (None, '"' | '`' | '\'') => {
                quote = Some(c);
                shape.push(c);
            }
            (None, '[') => {
                quote = Some(']');
                shape.push('[');
            }
            (None, c) if c.is_ascii_digit() => shape.push('#'),
            (None, c) => shape.push(c),
        }
        if shape.chars().count() >= 80 {
            break;
        }
    }
    shape
}

/// What the session does with an Event: offers and updates into the crate's model.
fn read_event(event: &Event) {
    if let Some(offers) = &event.offers {
        for offer in &offers.offers {
            let _ = convert::offer_from_wire(offer);
        }
    }
    if let Some(update) = &event.update {
        let _ = convert::update_from_wire(&update.status);
    }
}

/// Encoding a decoded message, decoding that and encoding again gives the same bytes.
fn stable_json<M>(message: &M) -> Result<(), String>
where
    M: prost::Message + prost::Name + Default,
{
    let first = json::to_vec(message);
    let again = json::from_slice::<M>(&first)
        .map_err(|e| format!("its own encoding does not read back: {e}"))?;
    let second = json::to_vec(&again);
    if first != second {
        return Err(format!(
            "encodings differ:\n{}\n{}",
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second)
        ));
    }
    Ok(())
}
