//! The generated resource reference must match the providers' descriptions.

#[test]
fn docs_resources_md_is_generated_from_the_current_descriptions() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infrasql"))
        .arg("docs")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/resources.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/resources.md is out of date: run `cargo run -- docs > docs/resources.md`"
    );
    for table in [
        "aws.vpc",
        "aws.subnet",
        "aws.security_group_rule",
        "aws.key_pair",
    ] {
        assert!(
            generated.contains(&format!("## {table}")),
            "{table} missing"
        );
    }
}
