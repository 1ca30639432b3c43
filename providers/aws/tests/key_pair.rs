mod common;

use common::{ctx, props, Moto};
use infrasql_aws::ec2::key_pair::KeyPair;
use infrasql_provider::{ErrorClass, PropsExt, Resource};
use serde_json::json;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHyMGjLnwPpztjEoSDYQqZSKpD+CCkv+dbynor+h0z1k";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCrSwkokH2ITY0LRusj8dQm40ji8pdbKEooZnl0PKjSqH+IA/kWL92yPPUKCbDlj0gM2hk5QErbpspoAht2QYsB5MjY0QP2UxwEz56VCvlY7gJCZUtTVIFLiU87E//adGjEwo++B6MXLXp8biosRCBwVmd61rsV52Ps2FqvyvbgdmUMuH3w1m+6qE64f5F9qu/MTLojt0x7ayPTXnjqAOiuBM+ekPAtakgn9CPJtNnZbWTtLHFxvdffxFxlm/+FYPtqJHNqQe+rWZ149pRyuXfDilS0QxEv9pLKtvOI8vW/X3Hy6QY6TRiHu3pthVftFqXRlxEGX0l1dz4OiRLEijuB";

#[tokio::test]
async fn a_key_is_imported_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let keys = KeyPair::new(moto.clients().await);
    // As pasted from ~/.ssh/id_ed25519.pub: with a comment and a newline.
    let desired = props(json!({
        "region": "us-east-1", "key_name": "deploy",
        "public_key_material": format!("{ED25519} dev@laptop\n"),
        "tags": {"team": "ops", "Name": "deploy key"}
    }));
    let made = keys.create(&ctx(), &desired).await.unwrap();
    let id = made.str("key_pair_id").unwrap().to_owned();
    assert!(id.starts_with("key-"), "{id}");
    assert_eq!(made.str("key_name"), Some("deploy"));
    assert_eq!(made.str("public_key_material"), Some(ED25519));
    assert_eq!(made.str("key_type"), Some("ed25519"));
    assert!(made.str("key_fingerprint").is_some());
    let created = made.str("create_time").unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    assert_eq!(
        made.get("tags"),
        Some(&json!({"team": "ops", "Name": "deploy key"}))
    );
    assert!(!made.contains_key("name"), "key pairs have no name column");
    assert!(!made.contains_key("synced_at"));

    // Independently of the provider.
    let ec2 = moto.ec2().await;
    let out = ec2
        .describe_key_pairs()
        .key_names("deploy")
        .include_public_key(true)
        .send()
        .await
        .unwrap();
    let k = &out.key_pairs()[0];
    assert_eq!(k.key_pair_id(), Some(id.as_str()));
    assert_eq!(k.public_key().map(str::trim), Some(ED25519));
    assert!(k
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(k
        .tags()
        .iter()
        .any(|t| t.key() == Some("team") && t.value() == Some("ops")));

    let listed = keys.list("us-east-1").await.unwrap().into_props();
    let mine = listed
        .iter()
        .find(|p| p.str("key_pair_id") == Some(&id))
        .expect("listed");
    assert_eq!(mine, &made);

    // Tags change in place.
    let mut after = made.clone();
    after.insert("tags".into(), json!({"team": "platform"}));
    let updated = keys.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("key_pair_id"), Some(id.as_str()));
    assert_eq!(updated.get("tags"), Some(&json!({"team": "platform"})));
    let out = ec2
        .describe_key_pairs()
        .key_names("deploy")
        .send()
        .await
        .unwrap();
    let tags = out.key_pairs()[0].tags();
    assert!(!tags.iter().any(|t| t.key() == Some("Name")));
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("team") && t.value() == Some("platform")));

    keys.delete(&ctx(), &id, &updated).await.unwrap();
    let out = ec2.describe_key_pairs().send().await.unwrap();
    assert!(out
        .key_pairs()
        .iter()
        .all(|k| k.key_name() != Some("deploy")));
    // Deleting again is not an error: the goal is reached.
    keys.delete(&ctx(), &id, &updated).await.unwrap();
}

#[tokio::test]
async fn an_rsa_key_is_imported_and_deleted_by_id_only() {
    let moto = Moto::start();
    let keys = KeyPair::new(moto.clients().await);
    let a = keys
        .create(
            &ctx(),
            &props(json!({"key_name": "ci", "public_key_material": format!("{RSA} ops@ci")})),
        )
        .await
        .unwrap();
    assert_eq!(a.str("key_type"), Some("rsa"));
    assert_eq!(a.str("public_key_material"), Some(RSA));
    assert_eq!(a.get("tags"), Some(&json!({})));
    let b = keys
        .create(
            &ctx(),
            &props(json!({"key_name": "other", "public_key_material": ED25519})),
        )
        .await
        .unwrap();
    // Deleting one by its id leaves the other alone.
    keys.delete(&ctx(), a.str("key_pair_id").unwrap(), &props(json!({})))
        .await
        .unwrap();
    let ec2 = moto.ec2().await;
    let out = ec2.describe_key_pairs().send().await.unwrap();
    let names: Vec<_> = out
        .key_pairs()
        .iter()
        .filter_map(|k| k.key_name())
        .collect();
    assert_eq!(names, vec!["other"]);
    assert_eq!(out.key_pairs()[0].key_pair_id(), b.str("key_pair_id"));
}

#[tokio::test]
async fn a_bad_public_key_is_invalid_and_a_taken_name_is_a_conflict() {
    let moto = Moto::start();
    let keys = KeyPair::new(moto.clients().await);
    let err = keys
        .create(
            &ctx(),
            &props(json!({"key_name": "bad", "public_key_material": "ssh-rsa not-a-key"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid, "{err}");
    assert_eq!(err.code, "InvalidKeyPair.Format");

    keys.create(
        &ctx(),
        &props(json!({"key_name": "taken", "public_key_material": ED25519})),
    )
    .await
    .unwrap();
    let err = keys
        .create(
            &ctx(),
            &props(json!({"key_name": "taken", "public_key_material": RSA})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "InvalidKeyPair.Duplicate");

    let ec2 = moto.ec2().await;
    let out = ec2.describe_key_pairs().send().await.unwrap();
    let names: Vec<_> = out
        .key_pairs()
        .iter()
        .filter_map(|k| k.key_name())
        .collect();
    assert_eq!(names, vec!["taken"]);
}
