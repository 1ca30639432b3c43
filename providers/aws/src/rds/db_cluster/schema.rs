//! The description of `aws.db_cluster`: its columns, their kinds and docs.

use infrasql_provider::{Column, ColumnKind::*, MemberSet, ReplaceOrder, ResourceSchema};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "db_cluster",
    display: "DB cluster",
    doc: "An Aurora DB cluster; its instances are rows of aws.db_instance naming it. The name, engine version, master password, port, backup retention, deletion protection, security groups and tags change in place; the region, engine, master user name, subnet group, encryption or database name replace it. A DELETE needs skip_final_snapshot or final_snapshot_identifier, and deletion protection off.",
    columns: &[
        Column::new(
            "db_cluster_identifier",
            Name,
            "The cluster's name, chosen at INSERT (unique across regions here, as foreign keys name it alone; AWS keeps it lower case); an UPDATE renames the cluster in place",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "engine",
            ReplaceOnChange,
            "aurora-postgresql or aurora-mysql",
        ),
        Column::new(
            "engine_version",
            Desired,
            "Engine version; NULL at INSERT means AWS's default (then filled in); an upgrade is made in place",
        ),
        Column::new(
            "master_username",
            ReplaceOnChange,
            "The master user's name",
        ),
        Column::new(
            "master_user_password",
            WriteOnly,
            "The master user's password: sent at INSERT, or set on a row to change it; never stored (NULL when manage_master_user_password is on)",
        ),
        Column::new(
            "manage_master_user_password",
            Desired,
            "Whether AWS keeps the master password in Secrets Manager (master_user_secret_arn); changed in place",
        ),
        Column::reference(
            "db_subnet_group_name",
            ReplaceOnChange,
            "db_subnet_group",
            "The DB subnet group (its subnets' VPC is the cluster's); NULL means the default VPC's",
        ),
        Column::member_set(
            "vpc_security_group_ids",
            "security_group",
            MemberSet {
                table: "db_cluster_security_group",
                owner: "db_cluster_identifier",
                member: "group_id",
            },
            "Its VPC security groups, one row each; none means the VPC's default group (sync then adds its row)",
        ),
        Column::new(
            "port",
            Desired,
            "The port it listens on; NULL at INSERT means the engine's default (then filled in)",
        ),
        Column::new(
            "backup_retention_period",
            Desired,
            "Days automated backups are kept (1 to 35); NULL at INSERT means AWS's default (then filled in)",
        ),
        Column::new(
            "deletion_protection",
            Desired,
            "While on, AWS refuses to delete the cluster, and so does a DELETE of the row",
        ),
        Column::new(
            "storage_encrypted",
            ReplaceOnChange,
            "Whether its storage is encrypted",
        ),
        Column::new(
            "database_name",
            ReplaceOnChange,
            "The database created with the cluster; NULL for none",
        ),
        Column::new(
            "apply_immediately",
            Desired,
            "An instruction, never listed: a new master password applies now (true, the default) or in the next maintenance window; a rename always applies now",
        ),
        Column::new(
            "skip_final_snapshot",
            Desired,
            "An instruction, never listed: true lets a DELETE drop the cluster without a final snapshot",
        ),
        Column::new(
            "final_snapshot_identifier",
            Desired,
            "An instruction, never listed: the name of the cluster snapshot a DELETE takes first",
        ),
        Column::new("tags", Desired, "Tags, as a JSON object"),
        Column::new(
            "endpoint",
            CloudAssigned,
            "The writer endpoint (host name)",
        ),
        Column::new(
            "reader_endpoint",
            CloudAssigned,
            "The reader endpoint (host name)",
        ),
        Column::new(
            "status",
            CloudAssigned,
            "creating, available, modifying...; a new cluster is ready once available",
        ),
        Column::new("arn", CloudAssigned, "The cluster's ARN"),
        Column::new(
            "resource_id",
            CloudAssigned,
            "AWS's own id of the cluster (cluster-...), which a rename keeps",
        ),
        Column::new(
            "master_user_secret_arn",
            CloudAssigned,
            "The Secrets Manager secret holding the master password, when AWS manages it",
        ),
        Column::new("create_time", CloudAssigned, "When it was created"),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["db_cluster_identifier"],
    stateful: Some("the data in the cluster"),
};
