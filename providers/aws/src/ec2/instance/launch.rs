//! RunInstances sent once in effect. AWS deduplicates a launch by its
//! client token, but not every AWS-compatible endpoint does (moto starts a
//! second instance), and a launch whose answer was lost must never start
//! one: the call goes through [`create_once`], which looks for the first
//! attempt's instance by its create-token tag before it resends.

use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::operation::run_instances::RunInstancesOutput;
use aws_sdk_ec2::types::{ResourceType, TagSpecification};
use infrasql_provider::{ApplyContext, Props, ProviderError};

use super::super::{tag_spec_once, token_filter};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::classify;

/// Launch what `request` describes (everything but the token and tags),
/// tagged with the row's tags, the apply id and the create token.
pub(super) async fn launch(
    ec2: &aws_sdk_ec2::Client,
    request: RunInstancesFluentBuilder,
    ctx: &ApplyContext,
    desired: &Props,
) -> Result<RunInstancesOutput, ProviderError> {
    let token = &create_token(ctx);
    // AWS's client token is at most 64 characters; the tag keeps the whole.
    let client_token: String = token.chars().take(64).collect();
    let tags = tag_spec_once(ResourceType::Instance, desired, ctx, token);
    let request = &request.client_token(client_token).tag_specifications(
        TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(tags.tags)
            .build(),
    );
    create_once(
        move || async move {
            request
                .clone()
                .customize()
                .config_override(no_sdk_retry())
                .send()
                .await
                .map_err(classify)
        },
        move || async move {
            let out = ec2
                .describe_instances()
                .filters(token_filter(token))
                .send()
                .await
                .map_err(classify)?;
            Ok(out.reservations().first().map(|r| {
                RunInstancesOutput::builder()
                    .set_instances(r.instances.clone())
                    .set_owner_id(r.owner_id.clone())
                    .build()
            }))
        },
    )
    .await
}
