//! ELBv2 tags: every type here is tagged by ARN, read with DescribeTags
//! (at most 20 ARNs per call, so a listing asks once per 20 resources, the
//! batches concurrently) and changed with AddTags/RemoveTags. ELBv2 has no
//! Name tag: `name` is a real attribute where a type has one.

use std::collections::HashMap;

use aws_sdk_elasticloadbalancingv2::types::Tag;
use aws_sdk_elasticloadbalancingv2::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::sdk::classify;
use infrasql_aws::tags::{self, NameTag};
use infrasql_provider::{ApplyContext, Props, ProviderError};

/// DescribeTags takes at most this many ARNs.
pub const TAGS_PER_CALL: usize = 20;

/// The SDK's tags from key/value pairs.
pub fn sdk_tags(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<Tag> {
    pairs
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tags of a create call: the row's tags, its stack and the apply id.
pub fn for_create(desired: &Props, ctx: &ApplyContext) -> Vec<Tag> {
    sdk_tags(tags::for_create(desired, ctx, NameTag::None))
}

/// Put tags a create just sent into `p` (no second call to read them back).
pub fn put_sent(p: &mut Props, sent: &[Tag]) {
    tags::put_tags(
        p,
        sent.iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
        NameTag::None,
    );
}

/// The tags of every ARN, one DescribeTags per 20 ARNs, up to 8 calls at a
/// time. An ARN AWS does not answer for has no tags.
pub async fn describe(
    elb: &Client,
    arns: &[String],
) -> Result<HashMap<String, Vec<(String, String)>>, ProviderError> {
    let batches: Vec<Vec<String>> = arns.chunks(TAGS_PER_CALL).map(<[_]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| async move {
            let out = elb
                .describe_tags()
                .set_resource_arns(Some(batch))
                .send()
                .await
                .map_err(classify)?;
            Ok::<_, ProviderError>(
                out.tag_descriptions()
                    .iter()
                    .filter_map(|d| {
                        let arn = d.resource_arn()?.to_owned();
                        let pairs = d
                            .tags()
                            .iter()
                            .map(|t| {
                                (
                                    t.key().unwrap_or("").to_owned(),
                                    t.value().unwrap_or("").to_owned(),
                                )
                            })
                            .collect::<Vec<_>>();
                        Some((arn, pairs))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(8)
        .try_fold(HashMap::new(), |mut all, part| async move {
            all.extend(part);
            Ok(all)
        })
        .await
}

/// Put the tags `describe` found for `arn` into `p`.
pub fn put(p: &mut Props, found: &HashMap<String, Vec<(String, String)>>, arn: &str) {
    let pairs = found.get(arn).map(Vec::as_slice).unwrap_or(&[]);
    tags::put_tags(
        p,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        NameTag::None,
    );
}

/// Make AWS's tags of `arn` follow a change of the row from `before` to
/// `after` (either direction: an undo swaps them).
pub async fn update(
    elb: &Client,
    arn: &str,
    before: &Props,
    after: &Props,
) -> Result<(), ProviderError> {
    let (removed, set) = tags::changes(before, after, NameTag::None);
    if !removed.is_empty() {
        elb.remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(classify)?;
    }
    if !set.is_empty() {
        elb.add_tags()
            .resource_arns(arn)
            .set_tags(Some(sdk_tags(set)))
            .send()
            .await
            .map_err(classify)?;
    }
    Ok(())
}

/// Whether a change between two rows touches the tags.
pub fn changed(before: &Props, after: &Props) -> bool {
    infrasql_aws::fields::changed(before, after, &tags::TAG_COLUMNS)
}

/// The tags of one ARN into `p` (one DescribeTags): for update's answer.
pub async fn read_into(elb: &Client, p: &mut Props, arn: &str) -> Result<(), ProviderError> {
    let found = describe(elb, &[arn.to_owned()]).await?;
    put(p, &found, arn);
    Ok(())
}
