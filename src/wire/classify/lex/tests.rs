use super::*;

#[test]
fn splitting_respects_quotes_dollar_quotes_and_comments() {
    let s = "insert into t values ('a;b'); select $$x;y$$; select $f$ $$ ; $f$;\
             select E'it\\'s;'; -- c;\n select \"we;ird\" /* ; */";
    let parts = split_statements(s);
    assert_eq!(parts.len(), 5, "{parts:?}");
    assert_eq!(parts[0], "insert into t values ('a;b')");
    assert_eq!(parts[1].trim(), "select $$x;y$$");
    assert_eq!(parts[2].trim(), "select $f$ $$ ; $f$");
    assert!(parts[4].contains("we;ird"));
    assert_eq!(split_statements("select 1;").as_slice(), ["select 1"]);
    assert_eq!(split_statements("select $1").as_slice(), ["select $1"]);
    assert_eq!(split_statements("").as_slice(), [""]);
    assert_eq!(split_statements("begin;;commit").len(), 3);
}

/// The memchr path (no quote, comment or parenthesis) splits as the
/// scan does.
#[test]
fn plain_queries_split_as_the_scan_splits_them() {
    for sql in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
        "begin;;commit",
        "BEGIN; UPDATE t SET a = 1; COMMIT;  \n",
        "select 1;   ",
        ";",
        "",
        "   ",
        "commit",
        "a;b;c;d;e",
    ] {
        assert_eq!(split_statements(sql), split_scanning(sql), "{sql:?}");
    }
    assert_eq!(
        split_statements("BEGIN; UPDATE t SET a = 1; COMMIT;  \n").as_slice(),
        ["BEGIN", " UPDATE t SET a = 1", " COMMIT"]
    );
    assert_eq!(split_statements(";").as_slice(), [""]);
}

#[test]
fn escape_keywords_and_dollars_in_identifiers_are_not_quotes() {
    let parts = split_statements("SELECT 'x' LIKE 'x\\_%' ESCAPE'\\'; INSERT INTO t VALUES (1)");
    assert_eq!(parts.len(), 2, "{parts:?}");
    let parts = split_statements("SELECT 1 AS a$q$; BEGIN; COMMIT; SELECT 1 AS b$q$");
    assert_eq!(parts.len(), 4, "{parts:?}");
    let parts = split_statements("SELECT E'it\\'s;'; SELECT $q$ ; $q$");
    assert_eq!(parts.len(), 2, "{parts:?}");
}

#[test]
fn psql_variables_leave_casts_strings_and_comments_alone() {
    let vars = |n: &str| match n {
        "env" => Some("it's"),
        "name" => Some("my \"vpc\""),
        "cidr" => Some("10.0.0.0/16"),
        "path" => Some("a\\b"),
        _ => None,
    };
    let sql = "SELECT :'env', :\"name\", :cidr::cidr, ':env', $$ :env $$, \"x:env\" -- :env\n /* :env */ FROM t WHERE a[1:2] = :'path'";
    assert_eq!(
        interpolate(sql, vars).unwrap(),
        "SELECT 'it''s', \"my \"\"vpc\"\"\", 10.0.0.0/16::cidr, ':env', $$ :env $$, \"x:env\" -- :env\n /* :env */ FROM t WHERE a[1:2] = E'a\\\\b'"
    );
    let e = interpolate("SELECT 1;\nSELECT :'region'", vars).unwrap_err();
    assert_eq!(e.name, "region");
    assert_eq!(e.offset, 17);
    assert_eq!(
        interpolate("SELECT x::int, 'a:b'", |_| None).unwrap(),
        "SELECT x::int, 'a:b'"
    );
}
