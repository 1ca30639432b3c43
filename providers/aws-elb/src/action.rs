//! The action of a listener (its default action) or a listener rule, as
//! columns: forward to one target group, or a fixed response. And a rule's
//! conditions, as AWS's JSON shape `[{"Field": ..., "Values": [...]}]`.
//!
//! Other actions (redirect, authenticate, a weighted forward to several
//! groups) and conditions other than `Values` lists have no columns: a
//! listing leaves such listeners and rules out, so sync neither imports
//! them nor calls them gone (they are left alone).

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, RuleCondition,
};
use infrasql_aws::fields::opt_str;
use infrasql_provider::{Props, PropsExt, ProviderError};
use serde_json::{json, Value};

/// The fixed-response columns, shared by listeners and rules.
pub const FIXED: [&str; 3] = [
    "fixed_response_status_code",
    "fixed_response_content_type",
    "fixed_response_body",
];

/// The one action a row asks for; `forward` names its target-group column.
pub fn actions(p: &Props, forward: &str) -> Result<Vec<Action>, ProviderError> {
    if let Some(tg) = p.str(forward) {
        return Ok(vec![Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .build()]);
    }
    let status = p
        .str(FIXED[0])
        .ok_or_else(|| ProviderError::invalid(format!("{forward} or {} is required", FIXED[0])))?;
    Ok(vec![Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code(status)
                .set_content_type(p.str(FIXED[1]).map(str::to_owned))
                .set_message_body(p.str(FIXED[2]).map(str::to_owned))
                .build(),
        )
        .build()])
}

/// Put AWS's actions into `p` as the columns; false when they are not one
/// forward to one group or one fixed response (no columns hold them).
pub fn put_actions(p: &mut Props, actions: &[Action], forward: &str) -> bool {
    let [action] = actions else {
        return false;
    };
    let mut cols = [Value::Null, Value::Null, Value::Null, Value::Null];
    match action.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let tg = action.target_group_arn().or_else(|| {
                match action.forward_config().map(|f| f.target_groups()) {
                    Some([one]) => one.target_group_arn(),
                    _ => None,
                }
            });
            match tg {
                Some(tg) => cols[0] = json!(tg),
                None => return false,
            }
        }
        Some(ActionTypeEnum::FixedResponse) => {
            let Some(f) = action.fixed_response_config() else {
                return false;
            };
            cols[1] = opt_str(f.status_code());
            cols[2] = opt_str(f.content_type());
            cols[3] = opt_str(f.message_body());
        }
        _ => return false,
    }
    let [tg, status, content_type, body] = cols;
    p.insert(forward.into(), tg);
    p.insert(FIXED[0].into(), status);
    p.insert(FIXED[1].into(), content_type);
    p.insert(FIXED[2].into(), body);
    true
}

/// The SDK's conditions from the row's JSON.
pub fn conditions(p: &Props) -> Result<Vec<RuleCondition>, ProviderError> {
    let bad = || {
        ProviderError::invalid(
            "conditions must be a JSON array of {\"Field\": text, \"Values\": [text, ...]}",
        )
    };
    let Some(Value::Array(items)) = p.get("conditions") else {
        return Err(bad());
    };
    items
        .iter()
        .map(|c| {
            let field = c.get("Field").and_then(Value::as_str).ok_or_else(bad)?;
            let values = c
                .get("Values")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RuleCondition::builder()
                .field(field)
                .set_values(Some(values))
                .build())
        })
        .collect()
}

/// AWS's conditions as the row's JSON; `None` when one has no `Values` list
/// (AWS answers `Values` and the field's config for host-header and
/// path-pattern; the other fields only have a config).
pub fn conditions_json(conds: &[RuleCondition]) -> Option<Value> {
    conds
        .iter()
        .map(|c| {
            let field = c.field()?;
            let values: Vec<&str> = if !c.values().is_empty() {
                c.values().iter().map(String::as_str).collect()
            } else if let Some(h) = c.host_header_config() {
                h.values().iter().map(String::as_str).collect()
            } else if let Some(pp) = c.path_pattern_config() {
                pp.values().iter().map(String::as_str).collect()
            } else {
                return None;
            };
            Some(json!({"Field": field, "Values": values}))
        })
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_forward_and_a_fixed_response_round_trip_through_the_sdk_types() {
        let fwd = props(json!({"target_group_arn": "arn:tg"}));
        let mut back = Props::new();
        assert!(put_actions(
            &mut back,
            &actions(&fwd, "target_group_arn").unwrap(),
            "target_group_arn"
        ));
        assert_eq!(back["target_group_arn"], json!("arn:tg"));
        assert_eq!(back["fixed_response_status_code"], Value::Null);

        let fixed = props(json!({
            "fixed_response_status_code": "404",
            "fixed_response_content_type": "text/plain",
            "fixed_response_body": "nope"
        }));
        let mut back = Props::new();
        assert!(put_actions(
            &mut back,
            &actions(&fixed, "default_target_group_arn").unwrap(),
            "default_target_group_arn"
        ));
        assert_eq!(back["default_target_group_arn"], Value::Null);
        assert_eq!(back["fixed_response_status_code"], json!("404"));
        assert_eq!(back["fixed_response_body"], json!("nope"));
    }

    #[test]
    fn two_actions_or_a_redirect_have_no_columns() {
        let fwd = actions(&props(json!({"t": "a"})), "t").unwrap();
        let two = [fwd[0].clone(), fwd[0].clone()];
        assert!(!put_actions(&mut Props::new(), &two, "t"));
        let redirect = Action::builder().r#type(ActionTypeEnum::Redirect).build();
        assert!(!put_actions(&mut Props::new(), &[redirect], "t"));
        assert!(actions(&Props::new(), "t").is_err());
    }

    #[test]
    fn conditions_round_trip_and_config_only_ones_are_not_represented() {
        let json = json!([{"Field": "path-pattern", "Values": ["/api/*"]}]);
        let sdk = conditions(&props(json!({"conditions": json.clone()}))).unwrap();
        assert_eq!(conditions_json(&sdk), Some(json));
        let header = RuleCondition::builder().field("http-header").build();
        assert_eq!(conditions_json(&[header]), None);
        assert!(conditions(&props(json!({"conditions": [{"Field": "x"}]}))).is_err());
    }
}
