//! What an AWS request is (service, action, wire protocol), and the error
//! answers AWS itself would send for it.
//!
//! The bodies are byte-for-byte the shapes the SDKs parse, per protocol, so
//! an injected fault goes through the SDK's real error parsing and retry
//! classification: EC2's `<Response><Errors>` XML, the `<ErrorResponse>`
//! XML of the other query-protocol services (RDS, IAM, STS), and the JSON
//! protocols' `{"__type", "message"}` with `x-amzn-ErrorType`.

use crate::Effect;

/// An AWS wire protocol, as far as error bodies differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's own query dialect (`Action=` form body, EC2 error XML).
    Ec2,
    /// The query protocol of RDS, IAM, STS... (`Action=` form body).
    Query,
    /// awsJson 1.0/1.1 (`X-Amz-Target` header) and restJson.
    Json,
    /// restXml (S3, Route 53...): neither `Action=` nor a target.
    RestXml,
}

/// Who a request is for and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// From the SigV4 credential scope (`ec2`, `rds`, `sts`...); empty if unsigned.
    pub service: String,
    /// `CreateVpc`, `GetParameter`...; `METHOD /path` for REST protocols.
    pub action: String,
    pub protocol: Protocol,
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// `key=value` out of a form or query string (action names need no decoding).
fn param(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// The service in `Credential=AKID/date/region/service/aws4_request` (SigV4)
/// or `Credential=AKID/date/service/aws4_request` (SigV4a).
fn signed_service(authorization: &str) -> Option<String> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    (parts.len() >= 3).then(|| parts[parts.len() - 2].to_owned())
}

pub fn identify(
    method: &str,
    target: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Identity {
    let service = header(headers, "authorization")
        .and_then(signed_service)
        .unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(t) = header(headers, "x-amz-target") {
        let action = t.rsplit('.').next().unwrap_or(t).to_owned();
        return Identity {
            service,
            action,
            protocol: Protocol::Json,
        };
    }
    let form = header(headers, "content-type")
        .filter(|c| c.contains("x-www-form-urlencoded"))
        .map(|_| String::from_utf8_lossy(body).into_owned())
        .unwrap_or_default();
    if let Some(action) = param(&form, "Action").or_else(|| param(query, "Action")) {
        // EC2 by its signing name, or by its API version when unsigned.
        let ec2 = service == "ec2"
            || param(&form, "Version")
                .or_else(|| param(query, "Version"))
                .as_deref()
                == Some("2016-11-15");
        let protocol = if ec2 { Protocol::Ec2 } else { Protocol::Query };
        return Identity {
            service,
            action,
            protocol,
        };
    }
    let json = header(headers, "content-type").is_some_and(|c| c.contains("json"));
    Identity {
        service,
        action: format!("{method} {path}"),
        protocol: if json {
            Protocol::Json
        } else {
            Protocol::RestXml
        },
    }
}

/// HTTP status, AWS error code and message of an injected error, as the
/// service would send them. `None` for effects that are not error answers.
pub fn error_of(protocol: Protocol, effect: &Effect) -> Option<(u16, String, String)> {
    let ec2 = protocol == Protocol::Ec2;
    let (status, code, message) = match effect {
        Effect::Throttle if ec2 => (503, "RequestLimitExceeded", "Request limit exceeded."),
        Effect::Throttle if protocol == Protocol::Json => {
            (400, "ThrottlingException", "Rate exceeded")
        }
        Effect::Throttle => (400, "Throttling", "Rate exceeded"),
        Effect::Status500 if ec2 => (500, "InternalError", "An internal error has occurred."),
        Effect::Status500 => (
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
        Effect::Status503 if ec2 => (
            503,
            "Unavailable",
            "The server is overloaded and can't handle the request.",
        ),
        Effect::Status503 => (
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ),
        Effect::Error {
            status,
            code,
            message,
        } => return Some((*status, code.clone(), message.clone())),
        Effect::Delay(_) | Effect::ResetBefore | Effect::ResetAfter | Effect::Answer(_) => {
            return None
        }
    };
    Some((status, code.to_owned(), message.to_owned()))
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Headers and body of an error answer in `protocol`'s format.
pub fn error_body(
    protocol: Protocol,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let (c, m, id) = (xml(code), xml(message), request_id);
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let (ctype, body) = match protocol {
        Protocol::Ec2 => (
            "text/xml;charset=UTF-8",
            format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{c}</Code>\
             <Message>{m}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
        ),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{c}</Code><Message>{m}</Message>\
             </Error><RequestId>{id}</RequestId></ErrorResponse>"
            ),
        ),
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{c}</Code>\
             <Message>{m}</Message><RequestId>{id}</RequestId></Error>"
            ),
        ),
        Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        ),
    };
    let mut headers = vec![
        ("content-type".to_owned(), ctype.as_bytes().to_vec()),
        ("x-amzn-requestid".to_owned(), id.as_bytes().to_vec()),
    ];
    if protocol == Protocol::Json {
        headers.push(("x-amzn-errortype".to_owned(), code.as_bytes().to_vec()));
    }
    (headers, body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

    #[test]
    fn requests_are_told_apart_by_protocol() {
        let ec2_auth = ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=x");
        let id = identify(
            "POST",
            "/",
            &h(&[FORM, ec2_auth]),
            b"Action=CreateVpc&Version=2016-11-15",
        );
        assert_eq!(
            (id.service.as_str(), id.action.as_str(), id.protocol),
            ("ec2", "CreateVpc", Protocol::Ec2)
        );

        let rds_auth = ("authorization", "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/rds/aws4_request, SignedHeaders=host");
        let id = identify(
            "POST",
            "/",
            &h(&[FORM, rds_auth]),
            b"Action=CreateDBInstance&Version=2014-10-31",
        );
        assert_eq!(
            (id.service.as_str(), id.action.as_str(), id.protocol),
            ("rds", "CreateDBInstance", Protocol::Query)
        );

        let id = identify(
            "POST",
            "/",
            &h(&[("X-Amz-Target", "AmazonSSM.GetParameter")]),
            b"{}",
        );
        assert_eq!(
            (id.action.as_str(), id.protocol),
            ("GetParameter", Protocol::Json)
        );

        let id = identify("PUT", "/bucket/key?x-id=PutObject", &h(&[]), b"data");
        assert_eq!(
            (id.action.as_str(), id.protocol),
            ("PUT /bucket/key", Protocol::RestXml)
        );
    }

    #[test]
    fn error_bodies_have_each_protocols_shape() {
        let (s, code, m) = error_of(Protocol::Ec2, &Effect::Throttle).unwrap();
        assert_eq!((s, code.as_str()), (503, "RequestLimitExceeded"));
        let (_, body) = error_body(Protocol::Ec2, s, &code, &m, "r1");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains("<Errors><Error><Code>RequestLimitExceeded</Code>"),
            "{body}"
        );
        assert!(body.contains("<RequestID>r1</RequestID>"), "{body}");

        let (s, code, m) = error_of(Protocol::Query, &Effect::Throttle).unwrap();
        let (_, body) = error_body(Protocol::Query, s, &code, &m, "r2");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r2</RequestId></ErrorResponse>"
        );

        let (s, code, m) = error_of(Protocol::Json, &Effect::Status503).unwrap();
        let (headers, body) = error_body(Protocol::Json, s, &code, &m, "r3");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "ServiceUnavailable");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amzn-errortype" && v == b"ServiceUnavailable"));
        assert_eq!(
            error_of(Protocol::Ec2, &Effect::Status500).unwrap().1,
            "InternalError"
        );
        assert_eq!(
            error_of(Protocol::Ec2, &Effect::Status503).unwrap().1,
            "Unavailable"
        );
    }
}
