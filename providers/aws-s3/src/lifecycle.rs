//! The `lifecycle_rules` column: a JSON list in AWS's own shape (the
//! `Rules` of a lifecycle configuration, as the S3 API documents them) to
//! and from the SDK's types.
//!
//! Both directions go through the SDK types, so what create writes back
//! into the row is exactly what the next listing reads: a rule the user
//! wrote with a key the SDK drops would otherwise show as drift forever.
//! Unknown keys are refused instead, naming the key (the rule-level
//! `Prefix`, deprecated by AWS, too: use `Filter.Prefix`). Dates (`Expiration.Date`,
//! `Transitions[].Date`) are not supported (days cover what a web stack
//! needs): a rule with one is refused at COMMIT, and a rule made outside
//! infrasql with one is read without its date.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    NoncurrentVersionTransition, Tag, Transition, TransitionStorageClass,
};
use infrasql_provider::ProviderError;
use serde_json::{json, Map, Value};

/// The SDK's rules for a row's `lifecycle_rules` list.
pub fn to_sdk(rules: &Value) -> Result<Vec<LifecycleRule>, ProviderError> {
    let list = rules
        .as_array()
        .ok_or_else(|| bad("lifecycle_rules must be a JSON list of rules"))?;
    list.iter().map(rule).collect()
}

/// The column's list for the SDK's rules.
pub fn from_sdk(rules: &[LifecycleRule]) -> Value {
    Value::Array(rules.iter().map(rule_json).collect())
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::invalid(message)
}

/// The object `v`, with only `allowed` keys.
fn object<'a>(
    v: &'a Value,
    what: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, ProviderError> {
    let o = v
        .as_object()
        .ok_or_else(|| bad(format!("lifecycle_rules: {what} must be a JSON object")))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "lifecycle_rules: {what} has the key {k}, which infrasql does not support (it takes {})",
            allowed.join(", ")
        )));
    }
    Ok(o)
}

fn int(o: &Map<String, Value>, key: &str) -> Result<Option<i32>, ProviderError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(format!("lifecycle_rules: {key} must be a whole number"))),
    }
}

fn long(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, ProviderError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("lifecycle_rules: {key} must be a whole number"))),
    }
}

fn text(o: &Map<String, Value>, key: &str) -> Result<Option<String>, ProviderError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("lifecycle_rules: {key} must be text"))),
    }
}

fn tag(v: &Value) -> Result<Tag, ProviderError> {
    let o = object(v, "a tag", &["Key", "Value"])?;
    Tag::builder()
        .set_key(text(o, "Key")?)
        .set_value(text(o, "Value")?)
        .build()
        .map_err(|e| bad(format!("lifecycle_rules: a tag needs Key and Value: {e}")))
}

fn rule(v: &Value) -> Result<LifecycleRule, ProviderError> {
    let o = object(
        v,
        "a rule",
        &[
            "ID",
            "Status",
            "Filter",
            "Expiration",
            "Transitions",
            "NoncurrentVersionExpiration",
            "NoncurrentVersionTransitions",
            "AbortIncompleteMultipartUpload",
        ],
    )?;
    let status = match text(o, "Status")?.as_deref() {
        Some("Enabled") => ExpirationStatus::Enabled,
        Some("Disabled") => ExpirationStatus::Disabled,
        _ => {
            return Err(bad(
                "lifecycle_rules: each rule needs Status 'Enabled' or 'Disabled'",
            ))
        }
    };
    let mut b = LifecycleRule::builder()
        .set_id(text(o, "ID")?)
        .status(status);
    if let Some(f) = o.get("Filter") {
        b = b.filter(filter(f)?);
    }
    if let Some(e) = o.get("Expiration") {
        let e = object(e, "Expiration", &["Days", "ExpiredObjectDeleteMarker"])?;
        b = b.expiration(
            LifecycleExpiration::builder()
                .set_days(int(e, "Days")?)
                .set_expired_object_delete_marker(
                    e.get("ExpiredObjectDeleteMarker").and_then(Value::as_bool),
                )
                .build(),
        );
    }
    for t in list(o, "Transitions")? {
        let t = object(t, "a transition", &["Days", "StorageClass"])?;
        b = b.transitions(
            Transition::builder()
                .set_days(int(t, "Days")?)
                .set_storage_class(
                    text(t, "StorageClass")?.map(|s| TransitionStorageClass::from(s.as_str())),
                )
                .build(),
        );
    }
    if let Some(e) = o.get("NoncurrentVersionExpiration") {
        let e = object(
            e,
            "NoncurrentVersionExpiration",
            &["NoncurrentDays", "NewerNoncurrentVersions"],
        )?;
        b = b.noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .set_noncurrent_days(int(e, "NoncurrentDays")?)
                .set_newer_noncurrent_versions(int(e, "NewerNoncurrentVersions")?)
                .build(),
        );
    }
    for t in list(o, "NoncurrentVersionTransitions")? {
        let t = object(
            t,
            "a noncurrent version transition",
            &["NoncurrentDays", "StorageClass", "NewerNoncurrentVersions"],
        )?;
        b = b.noncurrent_version_transitions(
            NoncurrentVersionTransition::builder()
                .set_noncurrent_days(int(t, "NoncurrentDays")?)
                .set_storage_class(
                    text(t, "StorageClass")?.map(|s| TransitionStorageClass::from(s.as_str())),
                )
                .set_newer_noncurrent_versions(int(t, "NewerNoncurrentVersions")?)
                .build(),
        );
    }
    if let Some(a) = o.get("AbortIncompleteMultipartUpload") {
        let a = object(
            a,
            "AbortIncompleteMultipartUpload",
            &["DaysAfterInitiation"],
        )?;
        b = b.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .set_days_after_initiation(int(a, "DaysAfterInitiation")?)
                .build(),
        );
    }
    b.build()
        .map_err(|e| bad(format!("lifecycle_rules: an incomplete rule: {e}")))
}

fn list<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], ProviderError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("lifecycle_rules: {key} must be a JSON list"))),
    }
}

fn filter(v: &Value) -> Result<LifecycleRuleFilter, ProviderError> {
    let keys = [
        "Prefix",
        "Tag",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
        "And",
    ];
    let o = object(v, "Filter", &keys)?;
    let mut b = LifecycleRuleFilter::builder()
        .set_prefix(text(o, "Prefix")?)
        .set_object_size_greater_than(long(o, "ObjectSizeGreaterThan")?)
        .set_object_size_less_than(long(o, "ObjectSizeLessThan")?);
    if let Some(t) = o.get("Tag") {
        b = b.tag(tag(t)?);
    }
    if let Some(a) = o.get("And") {
        let a = object(
            a,
            "Filter.And",
            &[
                "Prefix",
                "Tags",
                "ObjectSizeGreaterThan",
                "ObjectSizeLessThan",
            ],
        )?;
        let tags = list(a, "Tags")?
            .iter()
            .map(tag)
            .collect::<Result<Vec<_>, _>>()?;
        b = b.and(
            LifecycleRuleAndOperator::builder()
                .set_prefix(text(a, "Prefix")?)
                .set_tags((!tags.is_empty()).then_some(tags))
                .set_object_size_greater_than(long(a, "ObjectSizeGreaterThan")?)
                .set_object_size_less_than(long(a, "ObjectSizeLessThan")?)
                .build(),
        );
    }
    Ok(b.build())
}

/// `{key: value}` for the values that are set.
fn obj(pairs: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

fn tag_json(t: &Tag) -> Value {
    json!({"Key": t.key(), "Value": t.value()})
}

fn rule_json(r: &LifecycleRule) -> Value {
    obj([
        ("ID", r.id().map(|s| json!(s))),
        ("Status", Some(json!(r.status().as_str()))),
        (
            "Filter",
            r.filter().map(|f| {
                obj([
                    ("Prefix", f.prefix().map(|s| json!(s))),
                    ("Tag", f.tag().map(tag_json)),
                    (
                        "ObjectSizeGreaterThan",
                        f.object_size_greater_than().map(|n| json!(n)),
                    ),
                    (
                        "ObjectSizeLessThan",
                        f.object_size_less_than().map(|n| json!(n)),
                    ),
                    (
                        "And",
                        f.and().map(|a| {
                            obj([
                                ("Prefix", a.prefix().map(|s| json!(s))),
                                (
                                    "Tags",
                                    (!a.tags().is_empty()).then(|| {
                                        Value::Array(a.tags().iter().map(tag_json).collect())
                                    }),
                                ),
                                (
                                    "ObjectSizeGreaterThan",
                                    a.object_size_greater_than().map(|n| json!(n)),
                                ),
                                (
                                    "ObjectSizeLessThan",
                                    a.object_size_less_than().map(|n| json!(n)),
                                ),
                            ])
                        }),
                    ),
                ])
            }),
        ),
        (
            "Expiration",
            r.expiration().map(|e| {
                obj([
                    ("Days", e.days().map(|n| json!(n))),
                    (
                        "ExpiredObjectDeleteMarker",
                        e.expired_object_delete_marker().map(|b| json!(b)),
                    ),
                ])
            }),
        ),
        (
            "Transitions",
            (!r.transitions().is_empty()).then(|| {
                Value::Array(
                    r.transitions()
                        .iter()
                        .map(|t| {
                            obj([
                                ("Days", t.days().map(|n| json!(n))),
                                ("StorageClass", t.storage_class().map(|s| json!(s.as_str()))),
                            ])
                        })
                        .collect(),
                )
            }),
        ),
        (
            "NoncurrentVersionExpiration",
            r.noncurrent_version_expiration().map(|e| {
                obj([
                    ("NoncurrentDays", e.noncurrent_days().map(|n| json!(n))),
                    (
                        "NewerNoncurrentVersions",
                        e.newer_noncurrent_versions().map(|n| json!(n)),
                    ),
                ])
            }),
        ),
        (
            "NoncurrentVersionTransitions",
            (!r.noncurrent_version_transitions().is_empty()).then(|| {
                Value::Array(
                    r.noncurrent_version_transitions()
                        .iter()
                        .map(|t| {
                            obj([
                                ("NoncurrentDays", t.noncurrent_days().map(|n| json!(n))),
                                ("StorageClass", t.storage_class().map(|s| json!(s.as_str()))),
                                (
                                    "NewerNoncurrentVersions",
                                    t.newer_noncurrent_versions().map(|n| json!(n)),
                                ),
                            ])
                        })
                        .collect(),
                )
            }),
        ),
        (
            "AbortIncompleteMultipartUpload",
            r.abort_incomplete_multipart_upload().map(|a| {
                obj([(
                    "DaysAfterInitiation",
                    a.days_after_initiation().map(|n| json!(n)),
                )])
            }),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_goes_to_the_sdk_and_back_unchanged() {
        let rules = json!([
            {"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
            {"ID": "archive", "Status": "Disabled",
             "Filter": {"And": {"Prefix": "data/", "Tags": [{"Key": "k", "Value": "v"}]}},
             "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}],
             "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
        ]);
        assert_eq!(from_sdk(&to_sdk(&rules).unwrap()), rules);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = to_sdk(&json!([{"Status": "Enabled", "Expiration": {"Date": "2030-01-01"}}]))
            .unwrap_err();
        assert!(e.message.contains("Date"), "{}", e.message);
        let e = to_sdk(&json!([{"ID": "x"}])).unwrap_err();
        assert!(e.message.contains("Status"), "{}", e.message);
        let e = to_sdk(&json!({"ID": "x"})).unwrap_err();
        assert!(e.message.contains("list"), "{}", e.message);
    }
}
