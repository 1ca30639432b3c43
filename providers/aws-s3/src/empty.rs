//! Emptying a bucket before its delete, for a row with `force_destroy`:
//! every object version and delete marker goes (a versioned bucket keeps
//! both, and DeleteBucket refuses a bucket that has either).

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use infrasql_aws::sdk::classify;
use infrasql_provider::{ErrorClass, ProviderError};

/// AWS's limit of keys per DeleteObjects call.
const BATCH: usize = 1000;

/// Delete everything in `bucket`: ListObjectVersions page by page (key and
/// version markers), each page's versions and delete markers in
/// DeleteObjects calls of at most 1000 keys. Returns how many were deleted.
pub async fn empty(s3: &Client, bucket: &str) -> Result<usize, ProviderError> {
    let mut deleted = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(classify)?;
        let ids = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .set_key(k.map(str::to_owned))
                    .set_version_id(v.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        for chunk in ids.chunks(BATCH) {
            deleted += delete_batch(s3, bucket, chunk.to_vec()).await?;
        }
        if page.is_truncated() != Some(true) {
            return Ok(deleted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() && version_marker.is_none() {
            // A truncated page without markers would list the same page again.
            return Ok(deleted);
        }
    }
}

async fn delete_batch(
    s3: &Client,
    bucket: &str,
    ids: Vec<ObjectIdentifier>,
) -> Result<usize, ProviderError> {
    let n = ids.len();
    let delete = Delete::builder()
        .set_objects(Some(ids))
        .quiet(true)
        .build()
        .map_err(|e| ProviderError::invalid(e.to_string()))?;
    let out = s3
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(classify)?;
    // DeleteObjects answers 200 with per-key errors: one left is a bucket
    // DeleteBucket would refuse, so say which key and why now.
    if let Some(e) = out.errors().first() {
        return Err(ProviderError::new(
            ErrorClass::Conflict,
            e.code().unwrap_or("DeleteObjectsFailed"),
            format!(
                "emptying S3 bucket {bucket} (force_destroy): {} of {n} objects could not be deleted, the first {}: {}",
                out.errors().len(),
                e.key().unwrap_or("?"),
                e.message().unwrap_or("")
            ),
        ));
    }
    Ok(n)
}
