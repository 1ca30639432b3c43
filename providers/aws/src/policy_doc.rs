//! IAM policy documents (role trust policies, managed and inline policies,
//! bucket policies) as `jsonb`, compared by meaning rather than by text.
//!
//! AWS hands a document back URL-encoded (IAM), with its keys in another
//! order, and sometimes with a scalar where a one-element list was sent
//! (S3). None of that is a change. The provider reads every document AWS
//! returns through [`canonical`]; the commit writes that form into the row,
//! so the row and the next listing agree, and sync sees no drift where the
//! meaning did not change. `jsonb` already ignores key order.

use infrasql_provider::ProviderError;
use serde_json::Value;

/// Statement fields whose value is a string or a list of strings, with the
/// same meaning either way.
const LIST_FIELDS: [&str; 4] = ["Action", "NotAction", "Resource", "NotResource"];

/// Parse a document as AWS returns it: JSON text, URL-encoded or not.
pub fn parse(text: &str) -> Result<Value, ProviderError> {
    let decoded;
    let json = if text.trim_start().starts_with('{') {
        text
    } else {
        decoded = percent_decode(text);
        &decoded
    };
    serde_json::from_str(json)
        .map(|v| canonical(&v))
        .map_err(|e| ProviderError::invalid(format!("AWS returned a policy that is not JSON: {e}")))
}

/// The document as the JSON text AWS takes.
pub fn to_text(doc: &Value) -> String {
    doc.to_string()
}

/// One form for documents that mean the same: `Statement` always a list;
/// actions, resources, principals and condition values always lists,
/// sorted and without duplicates (their order means nothing).
pub fn canonical(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let Some(obj) = doc.as_object_mut() else {
        return doc;
    };
    if let Some(st) = obj.get_mut("Statement") {
        let mut list = as_list(st.take());
        for s in &mut list {
            statement(s);
        }
        *st = Value::Array(list);
    }
    doc
}

fn statement(s: &mut Value) {
    let Some(s) = s.as_object_mut() else {
        return;
    };
    for f in LIST_FIELDS {
        if let Some(v) = s.get_mut(f) {
            *v = sorted_list(v.take());
        }
    }
    for f in ["Principal", "NotPrincipal"] {
        // "*" means anyone and stays a string; {"AWS": "arn"} is a map of lists.
        if let Some(Value::Object(m)) = s.get_mut(f) {
            for v in m.values_mut() {
                *v = sorted_list(v.take());
            }
        }
    }
    if let Some(Value::Object(ops)) = s.get_mut("Condition") {
        for keys in ops.values_mut() {
            if let Value::Object(keys) = keys {
                for v in keys.values_mut() {
                    *v = sorted_list(v.take());
                }
            }
        }
    }
}

fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => vec![other],
    }
}

fn sorted_list(v: Value) -> Value {
    let mut list = as_list(v);
    list.sort_by_key(|x| x.to_string());
    list.dedup();
    Value::Array(list)
}

/// `%XX` escapes, as IAM encodes documents (RFC 3986: a `+` is a plus).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_lists_and_order_mean_the_same() {
        let sent = json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
            "Principal": {"Service": "ec2.amazonaws.com"}, "Resource": "*"}});
        let back = json!({"Statement": [{"Resource": ["*"], "Principal": {"Service": ["ec2.amazonaws.com"]},
            "Action": ["s3:GetObject", "s3:PutObject"], "Effect": "Allow"}], "Version": "2012-10-17"});
        assert_eq!(canonical(&sent), canonical(&back));
    }

    #[test]
    fn a_different_action_is_a_change() {
        let a =
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let b =
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]});
        assert_ne!(canonical(&a), canonical(&b));
    }

    #[test]
    fn url_encoded_documents_are_decoded() {
        let text = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22sts%3AAssumeRole%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%7D%7D";
        let doc = parse(text).unwrap();
        assert_eq!(
            doc,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["sts:AssumeRole"], "Principal": {"Service": ["ec2.amazonaws.com"]}}]})
        );
    }

    #[test]
    fn anyone_stays_a_string_and_garbage_is_an_error() {
        let doc = canonical(&json!({"Statement": [{"Principal": "*", "Effect": "Deny"}]}));
        assert_eq!(doc["Statement"][0]["Principal"], json!("*"));
        assert!(parse("%7Bnot json").is_err());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }
}
