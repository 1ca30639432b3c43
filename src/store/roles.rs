//! The three group roles of an infrasql database (reader, operator, admin).
//! Roles are cluster-wide in PostgreSQL, so each database has its own,
//! named after it; `schema/0980_roles.sql` (`infra.role_name`) grants to the
//! same names. They are made before the schema files run, since those grant
//! to them.

use tokio_postgres::Client;

/// The groups, weakest first: each is a member of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Reader,
    Operator,
    Admin,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Reader, Group::Operator, Group::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Reader => "reader",
            Group::Operator => "operator",
            Group::Admin => "admin",
        }
    }
}

/// PostgreSQL cuts identifiers at 63 bytes; `_infra_operator` is 15.
const MAX_DATABASE_NAME: usize = 63 - "_infra_operator".len();

/// The group role of `database`: `<database>_infra_<group>`. The one rule,
/// also `infra.role_name()` in SQL.
pub fn role_name(database: &str, group: Group) -> String {
    format!("{database}_infra_{}", group.as_str())
}

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("cannot check the roles: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "the database name {0:?} is too long for its roles (<database>_infra_operator must fit in 63 bytes); use a name of at most {MAX_DATABASE_NAME} bytes"
    )]
    NameTooLong(String),
    #[error(
        "the roles of database {database} are missing and {engine} may not create them (it lacks CREATEROLE).\n\
         Create them once as a superuser or a role with CREATEROLE, then start infrasql again:\n{statements}"
    )]
    CannotCreate {
        database: String,
        engine: String,
        statements: String,
    },
}

/// The statements that make the groups, in order.
fn create_statements(database: &str, engine: &str) -> Vec<String> {
    let [reader, operator, admin] = Group::ALL.map(|g| quote(&role_name(database, g)));
    vec![
        format!("CREATE ROLE {reader} NOLOGIN;"),
        format!("CREATE ROLE {operator} NOLOGIN IN ROLE {reader};"),
        format!("CREATE ROLE {admin} NOLOGIN IN ROLE {operator};"),
        // `infrasql role add` grants the groups as the engine role.
        format!(
            "GRANT {reader}, {operator}, {admin} TO {} WITH ADMIN OPTION;",
            quote(engine)
        ),
    ]
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Make the groups of the connected database if they are missing. Without
/// CREATEROLE, fail with the statements to run by hand; roles that exist
/// are enough. `admin` (the embedded cluster's first-start login role) is
/// made a member of the admin group.
pub async fn ensure(client: &Client, admin: Option<&str>) -> Result<(), RolesError> {
    let row = client
        .query_one(
            "SELECT current_database()::text, current_user::text, \
                    (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await?;
    let (database, engine, can_create): (String, String, bool) =
        (row.get(0), row.get(1), row.get(2));
    if database.len() > MAX_DATABASE_NAME {
        return Err(RolesError::NameTooLong(database));
    }
    let names: Vec<String> = Group::ALL
        .iter()
        .map(|g| role_name(&database, *g))
        .collect();
    let present: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await?
        .get(0);
    if present < names.len() as i64 {
        let statements = create_statements(&database, &engine);
        if !can_create {
            return Err(RolesError::CannotCreate {
                database,
                engine,
                statements: statements.join("\n"),
            });
        }
        // One at a time: a group another node made meanwhile is kept. The
        // last statement is for a DBA's hands only: the role that creates a
        // group may already grant it.
        for (name, sql) in names.iter().zip(&statements) {
            let exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[name])
                .await?
                .is_some();
            if !exists {
                client.batch_execute(sql).await?;
                tracing::info!("created role {name}");
            }
        }
    }
    if let Some(user) = admin {
        let group = role_name(&database, Group::Admin);
        let member: bool = client
            .query_one(
                "SELECT pg_has_role($1::text::name, $2::text::name, 'MEMBER')",
                &[&user, &group],
            )
            .await?
            .get(0);
        if !member {
            client
                .batch_execute(&format!("GRANT {} TO {}", quote(&group), quote(user)))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_database() {
        assert_eq!(
            role_name("infrasql", Group::Reader),
            "infrasql_infra_reader"
        );
        assert_eq!(role_name("prod", Group::Admin), "prod_infra_admin");
    }

    #[test]
    fn the_statements_quote_and_chain_the_groups() {
        let s = create_statements("my\"db", "eng");
        assert_eq!(s[0], "CREATE ROLE \"my\"\"db_infra_reader\" NOLOGIN;");
        assert_eq!(
            s[2],
            "CREATE ROLE \"my\"\"db_infra_admin\" NOLOGIN IN ROLE \"my\"\"db_infra_operator\";"
        );
        assert!(s[3].ends_with("TO \"eng\" WITH ADMIN OPTION;"), "{}", s[3]);
    }
}
