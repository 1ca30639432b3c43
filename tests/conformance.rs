//! AWS's own statement of each type's properties against our column kinds:
//! the CloudFormation registry schemas (which the PyPI package cfn-lint
//! ships; scripts/setup installs it) say which properties AWS assigns
//! (read-only), which a change replaces (create-only) and which AWS never
//! returns (write-only). `tests/conformance/cfn.toml` maps each table to
//! its CloudFormation type(s) and lists, with their reasons, the columns
//! that map to nothing and the rules that do not hold (its header says the
//! rules and the format). No server or moto: the registry is built on
//! dummy settings and makes no call.

#[path = "conformance/check.rs"]
mod check;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use check::{check, Mapping, Tables};
use serde_json::{json, Value};

fn mapping(text: &str) -> Mapping {
    toml::from_str(text).unwrap_or_else(|e| panic!("tests/conformance/cfn.toml: {e}"))
}

/// cfn-lint's schema directory, wherever pip put it for the `python3` that
/// scripts/setup installs into.
fn schemas_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            // Found, not imported: importing cfn-lint takes seconds.
            "import importlib.util as u; print(u.find_spec('cfnlint').submodule_search_locations[0])",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("data/schemas");
            assert!(
                dir.join("providers").is_dir(),
                "{} has no providers/: this cfn-lint lays out its schemas otherwise",
                dir.display()
            );
            dir
        }
        Ok(o) => panic!(
            "cfn-lint is not installed for python3 (it ships the CloudFormation schemas this test reads): run scripts/setup\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run python3 ({e}) to find cfn-lint: run scripts/setup"),
    }
}

/// One type's us-east-1 schema. cfn-lint 1.x keeps each distinct schema
/// once, as `resources/<hash>.json`, and maps type names to hashes in
/// `providers/us_east_1.py`; earlier releases had a file per type in
/// `providers/us_east_1/`.
fn load(dir: &Path, cfn_type: &str) -> Result<Value, String> {
    let per_type = dir.join("providers/us_east_1").join(format!(
        "{}.json",
        cfn_type.to_lowercase().replace("::", "-")
    ));
    let file = if per_type.is_file() {
        per_type
    } else {
        let index = dir.join("providers/us_east_1.py");
        let text = std::fs::read_to_string(&index)
            .map_err(|e| format!("cannot read {}: {e}", index.display()))?;
        let key = format!("\"{cfn_type}\": \"");
        let hash = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&key))
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| {
                format!(
                    "CloudFormation has no type {cfn_type} (not in {})",
                    index.display()
                )
            })?;
        dir.join("resources").join(format!("{hash}.json"))
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {cfn_type}'s schema {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

async fn our_tables() -> Tables {
    let clients = infrasql_aws::Clients::new(&infrasql_aws::AwsSettings {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        static_credentials: Some(("testing".into(), "testing".into())),
        region: Some("us-east-1".into()),
        max_concurrency: None,
        limiter: Default::default(),
        timeouts: Default::default(),
    })
    .await;
    infrasql::providers::aws(Arc::new(clients))
        .iter()
        .map(|r| {
            let s = r.schema();
            let columns: std::collections::BTreeMap<_, _> = s
                .columns
                .iter()
                .map(|c| (c.name.to_owned(), c.kind))
                .collect();
            (s.qualified(), columns)
        })
        .collect()
}

#[tokio::test]
async fn every_table_agrees_with_cloudformation_or_says_why_not() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/cfn.toml"
    ))
    .unwrap();
    let dir = schemas_dir();
    let tables = our_tables().await;
    assert!(
        tables.contains_key("aws.vpc") && tables.len() > 10,
        "{tables:?}"
    );
    let failures = check(&mapping(&text), &tables, &|t| load(&dir, t));
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with CloudFormation's schemas (tests/conformance/cfn.toml):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_schemas_read_are_aws_statements() {
    // A layout change in cfn-lint must not leave the check comparing
    // against nothing.
    let dir = schemas_dir();
    let vpc = load(&dir, "AWS::EC2::VPC").unwrap();
    assert_eq!(vpc["typeName"], "AWS::EC2::VPC");
    assert!(vpc["createOnlyProperties"]
        .as_array()
        .unwrap()
        .contains(&json!("/properties/CidrBlock")));
    let err = load(&dir, "AWS::EC2::NoSuchThing").unwrap_err();
    assert!(err.contains("no type AWS::EC2::NoSuchThing"), "{err}");
}

/// The check on a made-up type: what it reports, and that exceptions and
/// the unmapped list are held to what they claim.
#[test]
fn a_disagreement_names_table_column_property_and_rule() {
    use infrasql_provider::ColumnKind::*;
    let tables: Tables = [(
        "aws.thing".to_owned(),
        [
            ("thing_id", Identity),
            ("size", Desired),
            ("zone", ReplaceOnChange),
            ("secret", Desired),
            ("state", CloudAssigned),
            ("note", Desired),
        ]
        .into_iter()
        .map(|(c, k)| (c.to_owned(), k))
        .collect(),
    )]
    .into();
    let schema = json!({
        "typeName": "AWS::X::Thing",
        "properties": {"ThingId": {}, "Size": {}, "Zone": {}, "Secret": {},
                       "Status": {"$ref": "#/definitions/S"}},
        "definitions": {"S": {"properties": {"Code": {}}}},
        "readOnlyProperties": ["/properties/ThingId", "/properties/Status"],
        "createOnlyProperties": ["/properties/Size"],
        "writeOnlyProperties": ["/properties/Secret"],
    });
    let load = |t: &str| match t {
        "AWS::X::Thing" => Ok(schema.clone()),
        _ => Err(format!("CloudFormation has no type {t}")),
    };
    let toml = |extra: &str| {
        mapping(&format!(
            "[common.unmapped]\n\
             [[map]]\ntable = \"aws.thing\"\ncfn = \"AWS::X::Thing\"\n\
             [map.columns]\nthing_id = \"ThingId\"\nsize = \"Size\"\nzone = \"Zone\"\n\
             secret = \"Secret\"\nstate = \"Status/Code\"\n{extra}"
        ))
    };
    let found = check(&toml(""), &tables, &load);
    let expected = [
        "aws.thing.secret (AWS::X::Thing Secret): rule write-only:",
        "aws.thing.size (AWS::X::Thing Size): rule create-only:",
        "aws.thing.zone (AWS::X::Thing Zone): rule our-replace:",
        "aws.thing.note: neither mapped",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (f, e) in found.iter().zip(expected) {
        assert!(f.starts_with(e), "{f:?} does not start with {e:?}");
    }

    // Explained, they pass; an exception nothing needs does not.
    let explained = "[map.unmapped]\nnote = \"a note\"\n\
        [[map.exception]]\ncolumn = \"size\"\nrule = \"create-only\"\nreason = \"ModifyThing\"\n\
        [[map.exception]]\ncolumn = \"zone\"\nrule = \"our-replace\"\nreason = \"no call moves it\"\n\
        [[map.exception]]\ncolumn = \"secret\"\nrule = \"write-only\"\nreason = \"an instruction\"\n";
    assert_eq!(
        check(&toml(explained), &tables, &load),
        Vec::<String>::new()
    );
    let stale = format!(
        "{explained}[[map.exception]]\ncolumn = \"state\"\nrule = \"our-cloud\"\nreason = \"r\"\n"
    );
    let found = check(&toml(&stale), &tables, &load);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("exception to rule our-cloud that no mapped column needs"),
        "{}",
        found[0]
    );

    // A table of the registry that the file does not name.
    let mut more = tables.clone();
    more.insert("aws.other".into(), Default::default());
    let found = check(&toml(explained), &more, &load);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("aws.other: not in tests/conformance/cfn.toml"),
        "{}",
        found[0]
    );
}
