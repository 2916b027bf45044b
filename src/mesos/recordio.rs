//! RecordIO framing of the scheduler event stream: `<decimal length> LF <payload>`, records back to
//! back (API notes §2). This file owns the pure, incremental [`Decoder`] (no IO: bytes go in with
//! [`Decoder::feed`], whole records come out of [`Decoder::next_record`]) and the [`encode`]
//! function the dev cluster's master uses to write the same framing.
//!
//! The decoder follows the shape of mini-redis's frame parser: it never blocks and never guesses;
//! when a record is not complete yet it answers `Ok(None)` and waits for more bytes. HTTP chunk
//! boundaries are unrelated to record boundaries, so input may be split at any byte.

use bytes::{Buf, Bytes, BytesMut};

/// The largest record the decoder accepts unless told otherwise: 16 MiB. A master's OFFERS event
/// for a big cluster is a few MiB at most; anything larger is far more likely a corrupted length.
pub const DEFAULT_MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

/// The most digits a length line may have: `u64::MAX` is 20 digits long. Capping what we buffer
/// while looking for the LF means garbage without a newline fails fast instead of growing memory.
const MAX_LENGTH_DIGITS: usize = 20;

/// The stream is not valid RecordIO. There is no way to find the next record boundary after any
/// of these, so the decoder stays failed and the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    /// A byte other than an ASCII digit or the terminating LF in a length line.
    #[error(
        "invalid byte {} at position {position} of a recordio length line (digits before it: {digits:?}); expected ASCII digits then LF",
        describe_byte(*.byte)
    )]
    InvalidLengthByte {
        byte: u8,
        position: usize,
        digits: String,
    },
    /// A length line with no digits at all (an LF straight away).
    #[error("empty recordio length line: LF with no digits before it")]
    EmptyLength,
    /// More digits than any 64-bit length needs, and still no LF.
    #[error("recordio length line {digits:?}... has more than {MAX_LENGTH_DIGITS} digits")]
    LengthLineTooLong { digits: String },
    /// Twenty digits that do not fit in a `u64`.
    #[error("recordio length {digits} does not fit in an unsigned 64-bit integer")]
    LengthOverflow { digits: String },
    /// A well-formed length above the configured limit; refused before buffering the payload.
    #[error("recordio record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: u64, max: usize },
}

/// Incremental RecordIO decoder. Feed it bytes as they arrive; take records out until it answers
/// `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_record_len: usize,
    /// Length of the record whose payload is being read; `None` while reading a length line.
    pending_len: Option<usize>,
    /// The first error, returned again on every later call: the stream cannot resynchronise.
    failed: Option<RecordIoError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_RECORD_LEN)
    }
}

impl Decoder {
    /// A decoder that refuses records longer than `max_record_len` bytes.
    pub fn new(max_record_len: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max_record_len,
            pending_len: None,
            failed: None,
        }
    }

    /// Appends bytes read from the stream. Bytes fed after a failure are discarded: nothing can be
    /// decoded from them anyway.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete record, `Ok(None)` if more bytes are needed, or the error that broke the
    /// stream (again and again once it has happened). A zero-length record is yielded as empty
    /// `Bytes`, as the upstream decoder does, although a master never sends one.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            // Release the memory now; the stream is dead and the buffer can never be used again.
            self.buf = BytesMut::new();
        }
        result
    }

    /// True when no partial record is buffered, i.e. the stream may end here without losing data.
    pub fn is_at_record_boundary(&self) -> bool {
        self.pending_len.is_none() && self.buf.is_empty()
    }

    /// How many bytes are buffered but not yet returned as records.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    fn step(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if self.pending_len.is_none() {
            match self.parse_length_line()? {
                Some(len) => self.pending_len = Some(len),
                None => return Ok(None),
            }
        }
        match self.pending_len {
            Some(len) if self.buf.len() >= len => {
                self.pending_len = None;
                Ok(Some(self.buf.split_to(len).freeze()))
            }
            _ => Ok(None),
        }
    }

    /// Parses (and consumes) a complete length line at the front of the buffer, validating every
    /// byte seen so far even if the LF has not arrived, so garbage is reported as early as possible.
    fn parse_length_line(&mut self) -> Result<Option<usize>, RecordIoError> {
        let window = self.buf.len().min(MAX_LENGTH_DIGITS + 1);
        for (position, &byte) in self.buf[..window].iter().enumerate() {
            let digits = &self.buf[..position];
            if byte == b'\n' {
                if position == 0 {
                    return Err(RecordIoError::EmptyLength);
                }
                let len = parse_digits(digits)?;
                if len > self.max_record_len as u64 {
                    // Refused here, before a single payload byte is waited for or buffered.
                    return Err(RecordIoError::RecordTooLarge {
                        len,
                        max: self.max_record_len,
                    });
                }
                self.buf.advance(position + 1);
                // `len <= max_record_len`, a usize, so the conversion cannot truncate.
                return Ok(Some(len as usize));
            }
            if !byte.is_ascii_digit() {
                return Err(RecordIoError::InvalidLengthByte {
                    byte,
                    position,
                    digits: ascii(digits),
                });
            }
            if position == MAX_LENGTH_DIGITS {
                return Err(RecordIoError::LengthLineTooLong {
                    digits: ascii(digits),
                });
            }
        }
        Ok(None)
    }
}

/// Frames one record: the payload's length in ASCII decimal, LF, then the payload itself.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(payload.len() + MAX_LENGTH_DIGITS + 1);
    encode_into(payload, &mut dst);
    dst.freeze()
}

/// Appends one framed record to `dst`, for writers that batch several records into one chunk.
pub fn encode_into(payload: &[u8], dst: &mut BytesMut) {
    dst.extend_from_slice(payload.len().to_string().as_bytes());
    dst.extend_from_slice(b"\n");
    dst.extend_from_slice(payload);
}

/// Parses a run of ASCII digits (already validated) as a `u64`.
fn parse_digits(digits: &[u8]) -> Result<u64, RecordIoError> {
    digits
        .iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(|| RecordIoError::LengthOverflow {
            digits: ascii(digits),
        })
}

/// The digits of a length line as text; only called on bytes already checked to be ASCII digits.
fn ascii(digits: &[u8]) -> String {
    String::from_utf8_lossy(digits).into_owned()
}

/// A byte as hex plus its escaped character, so a CR shows up as `0x0d ('\r')`.
fn describe_byte(byte: u8) -> String {
    format!("0x{byte:02x} ('{}')", byte.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds everything at once and drains all complete records.
    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Bytes>, RecordIoError> {
        decoder.feed(input);
        let mut out = Vec::new();
        while let Some(record) = decoder.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    #[test]
    fn golden_protobuf_heartbeat_from_the_api_notes() {
        // Event{type: HEARTBEAT(8)} is `08 08`; framed it is `32 0A 08 08`.
        assert_eq!(&encode(&[0x08, 0x08])[..], &[0x32, 0x0a, 0x08, 0x08]);
        let mut decoder = Decoder::default();
        let records = decode_all(&mut decoder, &[0x32, 0x0a, 0x08, 0x08]).unwrap();
        assert_eq!(records, vec![Bytes::from_static(&[0x08, 0x08])]);
        assert!(decoder.is_at_record_boundary());
    }

    #[test]
    fn golden_json_heartbeat_from_the_api_notes() {
        let payload = br#"{"type":"HEARTBEAT"}"#;
        assert_eq!(payload.len(), 20);
        let wire = b"20\n{\"type\":\"HEARTBEAT\"}";
        assert_eq!(&encode(payload)[..], &wire[..]);
        assert_eq!(&wire[..3], &[0x32, 0x30, 0x0a]);
        let records = decode_all(&mut Decoder::default(), wire).unwrap();
        assert_eq!(records, vec![Bytes::from_static(payload)]);
    }

    #[test]
    fn records_back_to_back_and_split_inside_the_length() {
        let mut decoder = Decoder::default();
        decoder.feed(b"3\nabc1");
        assert_eq!(decoder.next_record().unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(decoder.next_record().unwrap(), None);
        assert!(!decoder.is_at_record_boundary());
        decoder.feed(b"2\n0123456789xy");
        assert_eq!(
            decoder.next_record().unwrap().as_deref(),
            Some(&b"0123456789xy"[..])
        );
        assert_eq!(decoder.next_record().unwrap(), None);
        assert!(decoder.is_at_record_boundary());
    }

    #[test]
    fn zero_length_record_is_yielded_as_empty() {
        let records = decode_all(&mut Decoder::default(), b"0\n0\n2\nok").unwrap();
        assert_eq!(
            records,
            vec![Bytes::new(), Bytes::new(), Bytes::from_static(b"ok")]
        );
    }

    #[test]
    fn leading_zeros_are_still_a_decimal_length() {
        let records = decode_all(&mut Decoder::default(), b"003\nabc").unwrap();
        assert_eq!(records, vec![Bytes::from_static(b"abc")]);
    }

    #[test]
    fn malformed_length_lines_are_rejected_with_what_was_found() {
        let cases: &[(&[u8], &str)] = &[
            (b"12\r\nabcdefghijkl", "0x0d ('\\r') at position 2"),
            (b"+5\nhello", "0x2b ('+') at position 0"),
            (b"-5\nhello", "0x2d ('-') at position 0"),
            (b" 5\nhello", "0x20 (' ') at position 0"),
            (b"5 \nhello", "0x20 (' ') at position 1"),
            (b"{\"type\":1}", "0x7b ('{') at position 0"),
            (b"0x10\n", "0x78 ('x') at position 1"),
            (b"\n", "empty recordio length line"),
            (b"\xff\n", "0xff ('\\xff') at position 0"),
        ];
        for (input, expected) in cases {
            let err = decode_all(&mut Decoder::default(), input).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(expected),
                "input {:?}: expected {expected:?} in {message:?}",
                input.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn invalid_byte_is_reported_before_the_lf_arrives() {
        let mut decoder = Decoder::default();
        decoder.feed(b"12a");
        let err = decoder.next_record().unwrap_err();
        assert_eq!(
            err,
            RecordIoError::InvalidLengthByte {
                byte: b'a',
                position: 2,
                digits: "12".into()
            }
        );
    }

    #[test]
    fn digits_without_lf_stop_at_twenty() {
        let mut decoder = Decoder::default();
        decoder.feed(&[b'1'; 20]);
        assert_eq!(
            decoder.next_record().unwrap(),
            None,
            "20 digits may still be valid"
        );
        decoder.feed(b"1");
        let err = decoder.next_record().unwrap_err();
        assert!(
            matches!(err, RecordIoError::LengthLineTooLong { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("more than 20 digits"), "{err}");
    }

    #[test]
    fn length_must_fit_in_u64() {
        // u64::MAX itself parses, and is then refused only by the size limit.
        let err = decode_all(&mut Decoder::default(), b"18446744073709551615\n").unwrap_err();
        assert_eq!(
            err,
            RecordIoError::RecordTooLarge {
                len: u64::MAX,
                max: DEFAULT_MAX_RECORD_LEN
            }
        );
        let err = decode_all(&mut Decoder::default(), b"18446744073709551616\n").unwrap_err();
        assert_eq!(
            err,
            RecordIoError::LengthOverflow {
                digits: "18446744073709551616".into()
            }
        );
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[test]
    fn oversize_record_is_refused_before_its_payload_is_buffered() {
        let mut decoder = Decoder::new(1024);
        // Only the length line has arrived; a decoder that waited for the payload would hold on to
        // the connection (and later the memory) for a record it is going to refuse.
        decoder.feed(b"999999999999\n");
        let err = decoder.next_record().unwrap_err();
        assert_eq!(
            err,
            RecordIoError::RecordTooLarge {
                len: 999_999_999_999,
                max: 1024
            }
        );
        assert_eq!(
            err.to_string(),
            "recordio record of 999999999999 bytes exceeds the limit of 1024 bytes"
        );
        // Nothing is kept, and nothing more is taken in.
        decoder.feed(&[0u8; 4096]);
        assert_eq!(decoder.buffered_len(), 0);
        assert!(decoder.buf.capacity() < 1024);
    }

    #[test]
    fn record_exactly_at_the_limit_is_accepted() {
        let records = decode_all(&mut Decoder::new(4), b"4\nabcd").unwrap();
        assert_eq!(records, vec![Bytes::from_static(b"abcd")]);
        let err = decode_all(&mut Decoder::new(4), b"5\nabcde").unwrap_err();
        assert_eq!(err, RecordIoError::RecordTooLarge { len: 5, max: 4 });
    }

    #[test]
    fn decoder_stays_failed_after_an_error() {
        let mut decoder = Decoder::default();
        decoder.feed(b"x");
        let first = decoder.next_record().unwrap_err();
        decoder.feed(b"2\nok");
        assert_eq!(decoder.next_record().unwrap_err(), first);
        assert_eq!(decoder.next_record().unwrap_err(), first);
    }

    proptest! {
        #[test]
        fn any_split_of_an_encoded_stream_yields_the_same_records(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            chunk_sizes in prop::collection::vec(1usize..=17, 1..40),
        ) {
            let mut wire = BytesMut::new();
            for record in &records {
                encode_into(record, &mut wire);
            }
            let mut decoder = Decoder::new(1024);
            let mut out: Vec<Vec<u8>> = Vec::new();
            let mut rest = &wire[..];
            let mut sizes = chunk_sizes.iter().cycle();
            while !rest.is_empty() {
                let size = (*sizes.next().unwrap()).min(rest.len());
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                decoder.feed(chunk);
                while let Some(record) = decoder.next_record().unwrap() {
                    out.push(record.to_vec());
                }
            }
            prop_assert_eq!(out, records);
            prop_assert!(decoder.is_at_record_boundary());
        }

        #[test]
        fn byte_at_a_time_matches_all_at_once(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8),
        ) {
            let wire: Vec<u8> = records.iter().flat_map(|r| encode(r).to_vec()).collect();
            let mut decoder = Decoder::default();
            let mut out = Vec::new();
            for byte in &wire {
                decoder.feed(std::slice::from_ref(byte));
                while let Some(record) = decoder.next_record().unwrap() {
                    out.push(record.to_vec());
                }
            }
            prop_assert_eq!(out, records);
        }
    }
}
