//! Turning wire lines into requests, with a typed error for every way a line
//! can be wrong.
//!
//! Parsing is two-staged so that errors are specific: first the line must be
//! UTF-8 and a JSON object with a string `type`, then the type must be known,
//! and only then are the fields checked. Each stage has its own error code, and
//! none of them closes the connection.

use final_pm_protocol::codec::Frame;
use final_pm_protocol::{ErrorCode, MAX_LINE_LENGTH, Request, Response};

/// How much of a bad line is quoted back in an error message.
const EXCERPT: usize = 80;

/// Parses one frame, or returns the error reply for it.
pub(crate) fn parse(frame: &Frame) -> Result<Request, Response> {
    let line = match frame {
        Frame::TooLong { len } => {
            return Err(Response::error(
                ErrorCode::LineTooLong,
                format!(
                    "request line of {len} bytes exceeds the limit of {MAX_LINE_LENGTH} bytes; it was discarded"
                ),
            ));
        }
        Frame::Line(line) => line,
    };
    let text = std::str::from_utf8(line).map_err(|e| {
        Response::error(
            ErrorCode::InvalidUtf8,
            format!("request is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    parse_text(text)
}

fn parse_text(text: &str) -> Result<Request, Response> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Response::error(
            ErrorCode::BadRequest,
            format!("request is not valid JSON ({e}): {}", excerpt(text)),
        )
    })?;
    parse_value(value)
}

/// Validates a JSON value as a request; used for batch entries too, so that a
/// bad entry is named by its position.
fn parse_value(value: serde_json::Value) -> Result<Request, Response> {
    let Some(object) = value.as_object() else {
        return Err(Response::error(
            ErrorCode::BadRequest,
            format!(
                "request must be a JSON object with a \"type\" field, got {}",
                kind(&value)
            ),
        ));
    };
    let ty = match object.get("type") {
        Some(serde_json::Value::String(ty)) => ty.clone(),
        Some(other) => {
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "request field \"type\" must be a string, got {}",
                    kind(other)
                ),
            ));
        }
        None => {
            return Err(Response::error(
                ErrorCode::BadRequest,
                "request has no \"type\" field",
            ));
        }
    };
    if !Request::TYPES.contains(&ty.as_str()) {
        return Err(Response::error(
            ErrorCode::UnknownRequest,
            format!(
                "unknown request type \"{}\"; known types: {}",
                excerpt(&ty),
                Request::TYPES.join(", ")
            ),
        ));
    }
    if ty == "all" {
        return parse_batch(value);
    }
    serde_json::from_value(value).map_err(|e| {
        Response::error(
            ErrorCode::InvalidArguments,
            format!("invalid arguments for \"{ty}\": {e}"),
        )
    })
}

fn parse_batch(mut value: serde_json::Value) -> Result<Request, Response> {
    let entries = match value.get_mut("requests").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(entries)) => entries,
        Some(other) => {
            return Err(Response::error(
                ErrorCode::InvalidArguments,
                format!(
                    "invalid arguments for \"all\": \"requests\" must be an array, got {}",
                    kind(&other)
                ),
            ));
        }
        None => {
            return Err(Response::error(
                ErrorCode::InvalidArguments,
                "invalid arguments for \"all\": missing field \"requests\"",
            ));
        }
    };
    let mut requests = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let request = parse_value(entry).map_err(|err| match err {
            Response::Error(mut e) => {
                e.message = format!("entry {index} of \"all\": {}", e.message);
                Response::Error(e)
            }
            other => other,
        })?;
        if matches!(request, Request::Hello { .. } | Request::All { .. }) {
            return Err(Response::error(
                ErrorCode::InvalidArguments,
                format!(
                    "entry {index} of \"all\": \"{}\" cannot be part of a batch",
                    request.type_name()
                ),
            ));
        }
        requests.push(request);
    }
    Ok(Request::All { requests })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < text.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use final_pm_protocol::ProcessId;
    use tokio_util::bytes::Bytes;

    fn code(text: &[u8]) -> (ErrorCode, String) {
        match parse(&Frame::Line(Bytes::copy_from_slice(text))) {
            Err(Response::Error(e)) => (e.code, e.message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn good_request_parses() {
        assert_eq!(
            parse_text(r#"{"type":"stop","id":7}"#),
            Ok(Request::Stop { id: ProcessId(7) })
        );
    }

    #[test]
    fn each_kind_of_bad_line_has_its_code() {
        assert_eq!(code(b"{not json").0, ErrorCode::BadRequest);
        assert_eq!(code(b"[1,2]").0, ErrorCode::BadRequest);
        assert_eq!(code(b"{\"id\":1}").0, ErrorCode::BadRequest);
        assert_eq!(code(b"{\"type\":5}").0, ErrorCode::BadRequest);
        assert_eq!(code(b"\xff\xfe").0, ErrorCode::InvalidUtf8);
        assert_eq!(code(b"{\"type\":\"explode\"}").0, ErrorCode::UnknownRequest);
        let (c, m) = code(br#"{"type":"stop","id":"seven"}"#);
        assert_eq!(c, ErrorCode::InvalidArguments);
        assert!(m.contains("\"stop\""), "{m}");
        assert_eq!(code(br#"{"type":"start"}"#).0, ErrorCode::InvalidArguments);
    }

    #[test]
    fn too_long_names_the_limit() {
        match parse(&Frame::TooLong { len: 9_000_000 }) {
            Err(Response::Error(e)) => {
                assert_eq!(e.code, ErrorCode::LineTooLong);
                assert!(e.message.contains("9000000"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_entries_are_checked_and_named_by_position() {
        let (c, m) = code(br#"{"type":"all","requests":[{"type":"info"},{"type":"nope"}]}"#);
        assert_eq!(c, ErrorCode::UnknownRequest);
        assert!(m.starts_with("entry 1 of \"all\""), "{m}");
        assert_eq!(
            code(br#"{"type":"all","requests":"derp"}"#).0,
            ErrorCode::InvalidArguments
        );
        let (c, m) = code(br#"{"type":"all","requests":[{"type":"all","requests":[]}]}"#);
        assert_eq!(c, ErrorCode::InvalidArguments);
        assert!(m.contains("cannot be part of a batch"), "{m}");
        assert_eq!(
            parse_text(r#"{"type":"all","requests":[{"type":"info"}]}"#),
            Ok(Request::All {
                requests: vec![Request::Info { usage: false }]
            })
        );
    }

    #[test]
    fn control_characters_are_not_echoed() {
        let (_, m) = code(b"{\"type\":\"a\x1b[31m\"}");
        assert!(!m.contains('\x1b'), "{m}");
    }
}
