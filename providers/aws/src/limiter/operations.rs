//! Every provider operation in its own [`operation`] scope, so that a
//! permit it asks for while holding one of the same limiter is borrowed
//! rather than waited for (see the limiter's doc). One wrapper around the
//! engine's whole resource list (`src/providers.rs`) covers every service
//! crate, present and future, without a change in any of them.

use std::sync::Arc;

use async_trait::async_trait;
use infrasql_provider::{
    ApplyContext, Listed, Props, ProviderError, Readiness, Resource, ResourceSchema,
};

use super::operation;

/// A resource type whose operations each run in an [`operation`] scope.
pub struct Operations(pub Arc<dyn Resource>);

impl Operations {
    /// Wrap every type of `all`.
    pub fn wrap(all: Vec<Arc<dyn Resource>>) -> Vec<Arc<dyn Resource>> {
        all.into_iter()
            .map(|r| Arc::new(Operations(r)) as Arc<dyn Resource>)
            .collect()
    }
}

#[async_trait]
impl Resource for Operations {
    fn schema(&self) -> &'static ResourceSchema {
        self.0.schema()
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        operation(self.0.list(region)).await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        operation(self.0.create(ctx, desired)).await
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        operation(self.0.update(ctx, id, before, after)).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        operation(self.0.delete(ctx, id, current)).await
    }

    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        operation(self.0.ready(ctx, id, created)).await
    }
}
