//! RecordIO framing (`<decimal length> LF <payload>`), being written.
