//! Whether an HTTP answer is AWS refusing a call for load, read from the
//! answer itself so that one interceptor serves every service and protocol:
//! the status (429, 503), the JSON protocols' `x-amzn-errortype` header, or
//! the error code in the body (`<Code>` in XML, `__type` or `code` in JSON).

/// AWS's throttling error codes across services.
const CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
];

/// AWS answered "too many requests" to this call.
pub fn is_throttle(status: u16, error_type: Option<&str>, body: &[u8]) -> bool {
    if status == 429 || status == 503 {
        return true;
    }
    if status < 400 {
        return false;
    }
    let code = error_type
        .map(short_code)
        .or_else(|| body_code(body).map(short_code));
    code.is_some_and(|c| CODES.contains(&c))
}

/// `aws.protocoltests#ThrottlingException:http://...` → `ThrottlingException`.
fn short_code(raw: &str) -> &str {
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw).trim()
}

/// The error code in an XML (`<Code>`) or JSON (`"__type"`, `"code"`) body.
fn body_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    if let Some(start) = text.find("<Code>") {
        let rest = &text[start + "<Code>".len()..];
        return Some(&rest[..rest.find('<')?]);
    }
    ["\"__type\"", "\"code\""].iter().find_map(|key| {
        let rest = &text[text.find(key)? + key.len()..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        Some(&rest[..rest.find('"')?])
    })
}

#[cfg(test)]
mod tests {
    use super::is_throttle;

    #[test]
    fn throttles_are_known_by_status_header_or_body_code() {
        assert!(is_throttle(429, None, b""));
        assert!(is_throttle(503, None, b"<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>"));
        let query = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert!(is_throttle(400, None, query));
        let json = br#"{"__type":"com.amazonaws#ThrottlingException","message":"slow down"}"#;
        assert!(is_throttle(400, None, json));
        assert!(is_throttle(
            400,
            Some("TooManyRequestsException:http://internal.amazon.com/"),
            b"{}"
        ));
        assert!(is_throttle(400, None, br#"{"code": "RequestThrottled"}"#));
        assert!(is_throttle(
            400,
            None,
            b"<Error><Code>SlowDown</Code></Error>"
        ));
    }

    #[test]
    fn other_errors_and_successes_are_not_throttles() {
        let conflict = b"<Response><Errors><Error><Code>InvalidGroup.Duplicate</Code></Error></Errors></Response>";
        assert!(!is_throttle(400, None, conflict));
        // A limit on resources, not on the request rate.
        let quota = b"<Error><Code>VpcLimitExceeded</Code></Error>";
        assert!(!is_throttle(400, None, quota));
        assert!(!is_throttle(
            500,
            None,
            b"<Error><Code>InternalError</Code></Error>"
        ));
        // A successful answer may name anything in its body.
        assert!(!is_throttle(200, None, b"<Code>Throttling</Code>"));
        assert!(!is_throttle(400, None, b"not xml"));
    }
}
