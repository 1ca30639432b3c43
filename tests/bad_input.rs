//! The catalogue of bad SQL input (issue #14; the list is docs/bad_input.md):
//! each input is answered with a fitting SQLSTATE at the statement, and
//! nothing reaches AWS (the fault proxy in front of moto logs every call).
//! Inputs AWS accepts (quotes, newlines, unicode, SQL-looking text in
//! names and tags) succeed and come back exactly, through a sync too.

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use infrasql_fault_proxy::FaultProxy;
use tokio_postgres::Client;

enum Expect {
    /// Refused with this SQLSTATE, the message containing the text; no AWS call.
    Err(&'static str, &'static str),
    /// Accepted; then (after a sync of the table) this query returns true.
    Ok(&'static str),
}
use Expect::{Err, Ok};

struct Case {
    name: &'static str,
    sql: &'static str,
    /// Text parameters $1, ...: a NUL cannot travel inside the query text.
    params: &'static [&'static str],
    expect: Expect,
}

const fn case(name: &'static str, sql: &'static str, expect: Expect) -> Case {
    Case {
        name,
        sql,
        params: &[],
        expect,
    }
}

const BASE: &str = "(SELECT vpc_id FROM aws.vpc WHERE name = 'base')";

/// Every statement runs as one autocommit statement: the refusal must come
/// before its COMMIT applies anything. `{base}` is the committed VPC's id
/// query, `{sg}` its security group's.
const CASES: &[Case] = &[
    // Too long.
    case("VPC name over 256 characters (its Name tag)", "INSERT INTO aws.vpc (name, cidr_block) VALUES (repeat('n', 257), '10.9.0.0/16')", Err("22001", "name is 257 characters long")),
    case("tag key over 128 characters", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', jsonb_build_object(repeat('k', 129), 'v'))", Err("22001", "is 129 characters long; AWS allows 128")),
    case("tag value over 256 characters", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', jsonb_build_object('k', repeat('v', 257)))", Err("22001", "is 257 characters long; AWS allows 256")),
    case("security group name over 255 characters", "INSERT INTO aws.security_group (group_name, vpc_id) VALUES (repeat('g', 256), {base})", Err("23514", "group_name")),
    case("security group description over 255 characters", "INSERT INTO aws.security_group (group_name, description, vpc_id) VALUES ('g', repeat('d', 256), {base})", Err("23514", "description")),
    case("empty tag key", "UPDATE aws.vpc SET tags = '{\"\": \"v\"}' WHERE name = 'base'", Err("22023", "a tag key is empty")),
    // Wrong type.
    case("CIDR that is not an address", "INSERT INTO aws.vpc (cidr_block) VALUES ('abc')", Err("22P02", "invalid input syntax for type cidr")),
    case("boolean that is not one", "INSERT INTO aws.vpc (cidr_block, enable_dns_support) VALUES ('10.9.0.0/16', 'maybe')", Err("22P02", "boolean")),
    case("port that is not a number", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', 'eighty', 80, '0.0.0.0/0')", Err("22P02", "integer")),
    case("tags that are not JSON", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', 'env=prod')", Err("22P02", "json")),
    case("tags that are a JSON string, not an object", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', '\"env\"')", Err("23514", "tags")),
    case("tag value that is an object", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', '{\"env\": {\"a\": 1}}')", Err("22023", "the value of tag \"env\" is a JSON object")),
    case("unknown protocol", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, cidr_ipv4) VALUES ({sg}, 'tcpp', '0.0.0.0/0')", Err("23514", "ip_protocol")),
    case("unknown instance tenancy", "INSERT INTO aws.vpc (cidr_block, instance_tenancy) VALUES ('10.9.0.0/16', 'shared')", Err("23514", "instance_tenancy")),
    // Out of range.
    case("port 70000", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', 70000, 70000, '0.0.0.0/0')", Err("23514", "are not a port range")),
    case("port -1 for tcp", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', -1, 80, '0.0.0.0/0')", Err("23514", "are not a port range")),
    case("port range backwards", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', 443, 80, '0.0.0.0/0')", Err("23514", "are not a port range")),
    case("port beyond integer", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', 99999999999, 80, '0.0.0.0/0')", Err("22003", "out of range")),
    case("VPC block larger than /16", "INSERT INTO aws.vpc (cidr_block) VALUES ('10.0.0.0/8')", Err("23514", "vpc_cidr_block_check")),
    // Invalid CIDRs.
    case("CIDR mask /33", "INSERT INTO aws.vpc (cidr_block) VALUES ('10.0.0.0/33')", Err("22P02", "10.0.0.0/33")),
    case("CIDR octet 300", "INSERT INTO aws.vpc (cidr_block) VALUES ('300.1.1.1/16')", Err("22P02", "300.1.1.1/16")),
    case("CIDR with host bits", "INSERT INTO aws.vpc (cidr_block) VALUES ('10.0.0.1/16')", Err("22P02", "invalid cidr value")),
    case("IPv6 block for an IPv4 VPC", "INSERT INTO aws.vpc (cidr_block) VALUES ('2001:db8::/56')", Err("23514", "vpc_cidr_block_check")),
    case("IPv6 peer in cidr_ipv4", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) VALUES ({sg}, 'tcp', 80, 80, '::/0')", Err("23514", "cidr_ipv4")),
    case("subnet outside its VPC", "INSERT INTO aws.subnet (vpc_id, cidr_block) VALUES ({base}, '10.1.0.0/24')", Err("23514", "is outside VPC \"base\"")),
    // NULL in required columns.
    case("VPC without a CIDR block", "INSERT INTO aws.vpc (name) VALUES ('no-cidr')", Err("23502", "cidr_block")),
    case("security group without a name", "INSERT INTO aws.security_group (vpc_id) VALUES ({base})", Err("23502", "group_name")),
    case("rule without a protocol", "INSERT INTO aws.security_group_rule (group_id, cidr_ipv4) VALUES ({sg}, '0.0.0.0/0')", Err("23502", "ip_protocol")),
    case("tags set to NULL", "UPDATE aws.vpc SET tags = NULL WHERE name = 'base'", Err("23502", "tags")),
    case("rule without a peer", "INSERT INTO aws.security_group_rule (group_id, ip_protocol) VALUES ({sg}, '-1')", Err("23514", "security_group_rule_one_peer")),
    // References among new rows.
    case("subnet of a VPC that does not exist", "INSERT INTO aws.subnet (vpc_id, cidr_block) VALUES ('vpc-00000000000000000', '10.0.1.0/24')", Err("23503", "foreign key constraint")),
    case("rule naming a provisional group id no row has", "INSERT INTO aws.security_group_rule (group_id, ip_protocol, referenced_group_id) VALUES ({sg}, '-1', 'pending-sg-00000000000000000')", Err("23503", "is a provisional id that no security group row has")),
    case("two new groups whose rules reference each other (legal: groups first, then rules)",
         "INSERT INTO aws.security_group (group_name, vpc_id) VALUES ('ping', {base}), ('pong', {base});
          INSERT INTO aws.security_group_rule (group_id, ip_protocol, referenced_group_id)
          SELECT a.group_id, '-1', b.group_id FROM aws.security_group a, aws.security_group b
           WHERE a.group_name IN ('ping', 'pong') AND b.group_name IN ('ping', 'pong') AND a.group_name <> b.group_name",
         Ok("SELECT count(*) = 2 FROM aws.security_group_rule r JOIN aws.security_group g USING (group_id) WHERE g.group_name IN ('ping', 'pong') AND r.referenced_group_id LIKE 'sg-%' AND r.security_group_rule_id LIKE 'sgr-%'")),
    // Quotes, newlines, NUL, bytes that are not UTF-8.
    Case { name: "NUL in a name (bind parameter)", sql: "INSERT INTO aws.vpc (name, cidr_block) VALUES ($1, '10.9.0.0/16')", params: &["a\0b"], expect: Err("22021", "0x00") },
    case("NUL in a tag value (JSON escape)", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', '{\"k\": \"a\\u0000b\"}')", Err("22P05", "unsupported Unicode escape sequence")),
    case("NUL from chr(0)", "INSERT INTO aws.vpc (name, cidr_block) VALUES ('a' || chr(0), '10.9.0.0/16')", Err("54000", "null character not permitted")),
    case("byte 0xff in a name (escape string)", "INSERT INTO aws.vpc (name, cidr_block) VALUES (E'bad\\xffbyte', '10.9.0.0/16')", Err("22021", "0xff")),
    case("quotes, newline, tab and unicode in a name and tags",
         "INSERT INTO aws.vpc (name, cidr_block, tags) VALUES (E'it''s \"q\"\\nline\\ttab 日本 🎉', '10.7.0.0/16', '{\"multi\\nline\": \"a\\tb\", \"quote\\\"d\": \"it''s \\\"x\\\" \\\\ $$ 🎉\"}')",
         Ok("SELECT tags = '{\"multi\\nline\": \"a\\tb\", \"quote\\\"d\": \"it''s \\\"x\\\" \\\\ $$ 🎉\"}'::jsonb FROM aws.vpc WHERE name = E'it''s \"q\"\\nline\\ttab 日本 🎉' AND vpc_id LIKE 'vpc-%'")),
    // Tag keys AWS reserves.
    case("aws: tag key on a new row", "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.9.0.0/16', '{\"aws:cloudformation:stack-name\": \"x\"}')", Err("42501", "tag key \"aws:cloudformation:stack-name\" is reserved by AWS")),
    case("AWS: tag key in another case", "UPDATE aws.vpc SET tags = tags || '{\"AWS:Owner\": \"me\"}' WHERE name = 'base'", Err("42501", "\"AWS:Owner\" is reserved")),
    case("aws: tag key on a security group", "INSERT INTO aws.security_group (group_name, vpc_id, tags) VALUES ('g', {base}, '{\"aws:x\": \"y\"}')", Err("42501", "reserved by AWS")),
    // SQL injection into infrasql's own statements.
    case("SQL in a name", "INSERT INTO aws.vpc (name, cidr_block) VALUES ('x''); DROP TABLE aws.vpc; --', '10.8.0.0/16')",
         Ok("SELECT count(*) = 1 FROM aws.vpc WHERE name = 'x''); DROP TABLE aws.vpc; --' AND vpc_id LIKE 'vpc-%'")),
    case("SQL in tag keys and values", "UPDATE aws.vpc SET tags = '{\"k''; DROP TABLE aws.vpc; --\": \"$$; DROP TABLE aws.vpc; $$\", \"e\\\\\": \"E''\\\\''\"}' WHERE name = 'base'",
         Ok("SELECT tags = '{\"k''; DROP TABLE aws.vpc; --\": \"$$; DROP TABLE aws.vpc; $$\", \"e\\\\\": \"E''\\\\''\"}'::jsonb FROM aws.vpc WHERE name = 'base'")),
    case("SQL in an infra setting's value (rewritten into the engine's refusal)", "SET infra.max_deletes = 'x''); DROP TABLE aws.vpc; --'", Err("22023", "infra.max_deletes")),
];

fn expand(sql: &str) -> String {
    sql.replace("{base}", BASE).replace(
        "{sg}",
        "(SELECT group_id FROM aws.security_group WHERE group_name = 'base-sg')",
    )
}

/// One autocommit statement (several, for a multi-statement case: one
/// implicit transaction).
async fn run(c: &Client, case: &Case) -> Result<(), tokio_postgres::Error> {
    if case.params.is_empty() {
        return c.batch_execute(&expand(case.sql)).await;
    }
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = case
        .params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    c.execute(&expand(case.sql), &params).await.map(drop)
}

#[tokio::test]
async fn every_bad_input_gets_a_fitting_sqlstate_and_nothing_reaches_aws() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('base', '10.0.0.0/16');
         INSERT INTO aws.security_group (group_name, vpc_id) SELECT 'base-sg', vpc_id FROM aws.vpc WHERE name = 'base'",
    )
    .await
    .unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        proxy.reset_log();
        let got = run(&c, case).await;
        let calls: Vec<String> = proxy.log().iter().map(|c| c.action.clone()).collect();
        match (&case.expect, got) {
            (Err(code, text), Result::Err(e)) => {
                let db = e.as_db_error();
                let (got_code, msg) = db.map_or(("none", e.to_string()), |d| {
                    (d.code().code(), d.message().to_owned())
                });
                if got_code != *code || !msg.contains(text) {
                    failures.push(format!(
                        "{}: expected {code} with {text:?}, got {got_code}: {msg}",
                        case.name
                    ));
                }
                if !calls.is_empty() {
                    failures.push(format!("{}: AWS was called: {calls:?}", case.name));
                }
            }
            (Err(code, _), Result::Ok(_)) => {
                failures.push(format!(
                    "{}: expected {code}, but it succeeded (AWS calls: {calls:?})",
                    case.name
                ));
            }
            (Ok(check), Result::Ok(_)) => {
                // What AWS keeps must come back unchanged.
                c.batch_execute(
                    "SELECT infra.sync('aws.vpc'); SELECT infra.sync('aws.security_group_rule')",
                )
                .await
                .unwrap();
                if !one::<bool>(&c, check).await {
                    failures.push(format!("{}: accepted, but {check} is false", case.name));
                }
            }
            (Ok(_), Result::Err(e)) => {
                failures.push(format!("{}: expected success, got {e:?}", case.name))
            }
        }
    }
    // Nothing the injections tried happened: every table is still there.
    let vpcs: i64 = one(
        &c,
        "SELECT count(*) FROM aws.vpc WHERE NOT coalesce(is_default, false)",
    )
    .await;
    assert_eq!(vpcs, 3, "base, the quoted name and the injected name");
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Tags AWS put on a resource (CloudFormation's) are imported by sync and
/// survive a user's UPDATE of other columns and tags; only the user's own
/// `aws:` writes are refused.
#[tokio::test]
async fn aws_tags_from_cloudformation_are_imported_and_left_alone() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let ec2 = moto.ec2().await;
    let cfn = Tag::builder()
        .key("aws:cloudformation:stack-name")
        .value("legacy")
        .build();
    let name = Tag::builder().key("Name").value("from-cfn").build();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(cfn)
                .tags(name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    c.batch_execute("SELECT infra.sync('aws.vpc')")
        .await
        .unwrap();
    let tags: String = one(&c, "SELECT tags::text FROM aws.vpc WHERE name = 'from-cfn'").await;
    assert_eq!(tags, r#"{"aws:cloudformation:stack-name": "legacy"}"#);

    c.batch_execute(
        "UPDATE aws.vpc SET enable_dns_hostnames = true, tags = tags || '{\"team\": \"web\"}' WHERE name = 'from-cfn'",
    )
    .await
    .unwrap();
    let out = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let mut in_aws: Vec<(String, String)> = out.vpcs()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .filter(|(k, _)| !k.starts_with("infrasql:"))
        .collect();
    in_aws.sort();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        in_aws,
        vec![
            pair("Name", "from-cfn"),
            pair("aws:cloudformation:stack-name", "legacy"),
            pair("team", "web")
        ]
    );
    let hostnames: bool = one(
        &c,
        "SELECT enable_dns_hostnames FROM aws.vpc WHERE name = 'from-cfn'",
    )
    .await;
    assert!(hostnames);

    // Removing or changing the imported tag is the user's write: refused.
    for stmt in [
        "UPDATE aws.vpc SET tags = tags - 'aws:cloudformation:stack-name' WHERE name = 'from-cfn'",
        "UPDATE aws.vpc SET tags = tags || '{\"aws:cloudformation:stack-name\": \"new\"}' WHERE name = 'from-cfn'",
    ] {
        let e = c.batch_execute(stmt).await.unwrap_err();
        assert_eq!(common::sqlstate(&e).as_deref(), Some("42501"), "{stmt}: {e:?}");
    }
}
