//! The Authorize calls of rule creates: one rule alone, or a batch
//! ([`super::batch`]) of the leader's rule and those that joined it, its
//! answer handed out rule by rule, and what a refusal or an unknown outcome
//! means for each.

use std::collections::HashSet;

use aws_sdk_ec2::types::{Filter, ResourceType, SecurityGroupRule as AwsRule};
use infrasql_provider::{ApplyContext, ErrorClass, Props, PropsExt, ProviderError, APPLY_TAG};

use super::{batch, permission, props, same_rule, tag_spec, SecurityGroupRule};
use crate::create_once::{create_once, no_sdk_retry};
use crate::sdk::{all_pages, classify, missing_id};

fn missing() -> ProviderError {
    missing_id("AuthorizeSecurityGroup*", "security group rule id")
}

impl SecurityGroupRule {
    /// One rule, one call. `adopt_own` after a refused batch: an endpoint
    /// may have made the rules before the one it refused (moto does; AWS
    /// refuses a call whole), so a duplicate that carries this apply's tag
    /// is the rule this create made, and is adopted.
    pub(super) async fn create_alone(
        &self,
        ctx: &ApplyContext,
        desired: &Props,
        adopt_own: bool,
    ) -> Result<Props, ProviderError> {
        let answer = match self.authorize_all(ctx, &[desired]).await {
            Ok(rules) => rules,
            Err(e) if adopt_own && e.class == ErrorClass::Conflict => {
                let listed = self.rules_of(ctx, desired.req_str("group_id")?).await?;
                let own = listed.iter().find(|r| {
                    same_rule(&props(r, &ctx.region), desired)
                        && r.tags()
                            .iter()
                            .any(|t| t.key() == Some(APPLY_TAG) && t.value() == Some(&ctx.apply_id))
                });
                return own.map(|r| props(r, &ctx.region)).ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let mut got = self.assign(ctx, &[desired], answer).await?;
        got.pop()
            .flatten()
            .map(|r| props(&r, &ctx.region))
            .ok_or_else(missing)
    }

    /// The leader's rule and those that joined it, in one call; each member
    /// gets its answer, the leader's is returned.
    pub(super) async fn create_batch(
        &self,
        ctx: &ApplyContext,
        desired: &Props,
        mut members: Vec<batch::Member>,
    ) -> Result<Props, ProviderError> {
        let asked: Vec<&Props> = std::iter::once(desired)
            .chain(members.iter().map(|m| &m.desired))
            .collect();
        let made = match self.authorize_all(ctx, &asked).await {
            Ok(answer) => self.assign(ctx, &asked, answer).await,
            Err(e) => Err(e),
        };
        match made {
            Ok(rules) => {
                let mut rules = rules.into_iter();
                let own = rules.next().flatten();
                for (m, rule) in members.iter_mut().zip(rules) {
                    m.answer(match rule {
                        Some(r) => batch::Outcome::Made(Box::new(r)),
                        None => batch::Outcome::Failed(missing()),
                    });
                }
                own.map(|r| props(&r, &ctx.region)).ok_or_else(missing)
            }
            // Whether AWS made them is unknown, or AWS kept refusing for
            // load: one by one would not do better.
            Err(e) if matches!(e.class, ErrorClass::Retryable | ErrorClass::Throttled) => {
                for m in &mut members {
                    m.answer(batch::Outcome::Failed(e.clone()));
                }
                Err(e)
            }
            // Refused as a whole: each rule alone, for its own answer.
            Err(_) => {
                for m in &mut members {
                    m.answer(batch::Outcome::Alone);
                }
                self.create_alone(ctx, desired, true).await
            }
        }
    }

    /// Pair an Authorize answer with the rules asked for. Rules the answer
    /// lacks (moto answers a call of several with the last rule only) are
    /// read from the group's listing, one call. The rules exist by then, so
    /// a failure here is an unknown outcome (`Retryable`): recovery finds
    /// them by the apply-id tag.
    async fn assign(
        &self,
        ctx: &ApplyContext,
        asked: &[&Props],
        answer: Vec<AwsRule>,
    ) -> Result<Vec<Option<AwsRule>>, ProviderError> {
        let same = |r: &AwsRule, d: &Props| same_rule(&props(r, &ctx.region), d);
        let mut paired = batch::pair(asked, answer, same);
        if paired.iter().all(Option::is_some) {
            return Ok(paired);
        }
        let group_id = asked[0].req_str("group_id")?;
        let listed = self.rules_of(ctx, group_id).await.map_err(|mut e| {
            e.class = ErrorClass::Retryable;
            e
        })?;
        let mut taken: HashSet<String> = paired
            .iter()
            .flatten()
            .filter_map(|r| r.security_group_rule_id().map(str::to_owned))
            .collect();
        for (slot, d) in paired.iter_mut().zip(asked) {
            if slot.is_some() {
                continue;
            }
            *slot = listed
                .iter()
                .find(|r| {
                    r.security_group_rule_id()
                        .is_some_and(|id| !taken.contains(id))
                        && same(r, d)
                })
                .cloned();
            if let Some(id) = slot.as_ref().and_then(|r| r.security_group_rule_id()) {
                taken.insert(id.to_owned());
            }
        }
        Ok(paired)
    }

    /// Every rule of a group, as AWS lists them.
    async fn rules_of(
        &self,
        ctx: &ApplyContext,
        group_id: &str,
    ) -> Result<Vec<AwsRule>, ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        all_pages(
            ec2.describe_security_group_rules()
                .filters(Filter::builder().name("group-id").values(group_id).build())
                .into_paginator()
                .items()
                .send(),
        )
        .await
    }

    /// One Authorize call for every rule of `asked` (one group, one
    /// direction, the same tags), sent once in effect as [`create_once`]
    /// sends any create: after a lost answer the rules are looked up, found
    /// only when every one is there (a call is carried out whole).
    async fn authorize_all(
        &self,
        ctx: &ApplyContext,
        asked: &[&Props],
    ) -> Result<Vec<AwsRule>, ProviderError> {
        let first = asked[0];
        let group_id = first.req_str("group_id")?;
        let egress = first.bool("is_egress").unwrap_or(false);
        let perms = &asked
            .iter()
            .map(|p| permission(p))
            .collect::<Result<Vec<_>, _>>()?;
        let tags = &tag_spec(ResourceType::SecurityGroupRule, first, ctx);
        // The concurrency permit is held for this call only.
        let ec2 = &self.clients.ec2(&ctx.region).await;
        let client = &ec2.client;
        create_once(
            move || async move {
                let rules = if egress {
                    client
                        .authorize_security_group_egress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(perms.clone()))
                        .tag_specifications(tags.clone())
                        .customize()
                        .config_override(no_sdk_retry())
                        .send()
                        .await
                        .map_err(classify)?
                        .security_group_rules
                } else {
                    client
                        .authorize_security_group_ingress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(perms.clone()))
                        .tag_specifications(tags.clone())
                        .customize()
                        .config_override(no_sdk_retry())
                        .send()
                        .await
                        .map_err(classify)?
                        .security_group_rules
                };
                Ok(rules.unwrap_or_default())
            },
            // A rule is its group, direction, protocol, ports and peer
            // (AWS refuses a second one as a duplicate): look for those.
            move || async move {
                let listed = all_pages(
                    client
                        .describe_security_group_rules()
                        .filters(Filter::builder().name("group-id").values(group_id).build())
                        .into_paginator()
                        .items()
                        .send(),
                )
                .await?;
                let found: Vec<AwsRule> = asked
                    .iter()
                    .filter_map(|d| {
                        listed
                            .iter()
                            .find(|r| same_rule(&props(r, &ctx.region), d))
                            .cloned()
                    })
                    .collect();
                Ok((found.len() == asked.len()).then_some(found))
            },
        )
        .await
    }
}
