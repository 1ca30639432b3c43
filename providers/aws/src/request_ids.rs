//! AWS's request id of every response, reported to the engine's per-step
//! collector ([`infrasql_provider::request_ids`]) for the apply history.
//!
//! One interceptor on every SDK client: the providers' calls stay as they
//! are. The id is read from the response header AWS sends with every answer
//! (`x-amzn-requestid`; S3-style services use `x-amz-request-id`), and from
//! the body where only the body has it (EC2's `<requestId>`, the query
//! protocol's `<RequestId>`).

/// Reports each response's request id, errors and retries included: an
/// AWS support case asks for the id of the call that failed.
#[derive(Debug)]
pub struct RecordRequestIds;

impl aws_sdk_ec2::config::Intercept for RecordRequestIds {
    fn name(&self) -> &'static str {
        "infrasql-record-request-ids"
    }
    // After deserialization the body is in memory for every operation
    // infrasql calls (none streams).
    fn read_after_deserialization(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let r = ctx.response();
        let header = ["x-amzn-requestid", "x-amz-request-id"]
            .iter()
            .find_map(|h| r.headers().get(*h));
        let id = header
            .map(str::to_owned)
            .or_else(|| r.body().bytes().and_then(from_body));
        if let Some(id) = id {
            infrasql_provider::request_ids::record(&id);
        }
        Ok(())
    }
}

/// The request id in an XML answer: `<requestId>` (EC2) or `<RequestId>`
/// (the query protocol's `ResponseMetadata`, and errors of both).
fn from_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    ["<requestId>", "<RequestId>", "<RequestID>"]
        .iter()
        .find_map(|open| {
            let start = text.find(open)? + open.len();
            let len = text[start..].find('<')?;
            Some(text[start..start + len].trim())
        })
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::from_body;

    #[test]
    fn the_id_is_found_in_ec2_and_query_protocol_bodies() {
        let ec2 =
            b"<DescribeVpcsResponse><vpcSet/><requestId>abc-1</requestId></DescribeVpcsResponse>";
        assert_eq!(from_body(ec2).as_deref(), Some("abc-1"));
        let rds = b"<X><ResponseMetadata><RequestId> def-2 </RequestId></ResponseMetadata></X>";
        assert_eq!(from_body(rds).as_deref(), Some("def-2"));
        let error = b"<Response><Errors><Error><Code>X</Code></Error></Errors><RequestID>ghi-3</RequestID></Response>";
        assert_eq!(from_body(error).as_deref(), Some("ghi-3"));
        assert_eq!(from_body(b"<A><requestId></requestId></A>"), None);
        assert_eq!(from_body(b"not xml"), None);
    }
}
