//! The description of `aws.instance`: its columns, their kinds and docs.

use infrasql_provider::{Column, ColumnKind::*, MemberSet, ReplaceOrder, ResourceSchema};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "instance",
    display: "instance",
    doc: "An EC2 instance. Setting desired_state stops or starts it; changing the instance type or EBS optimization stops and restarts it (a stopped one stays stopped); the root volume grows in place; changing the image, subnet or key pair replaces it.",
    columns: &[
        Column::new(
            "instance_id",
            Identity,
            "Instance id (i-...); provisional until launched",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new("image_id", ReplaceOnChange, "The AMI it is launched from"),
        Column::new(
            "instance_type",
            Desired,
            "Instance type (t3.micro...); a change stops the instance, modifies it and starts it again",
        ),
        Column::reference(
            "subnet_id",
            ReplaceOnChange,
            "subnet",
            "The subnet it runs in; NULL launches into the default subnet (sync fills in which)",
        ),
        Column::new(
            "key_name",
            ReplaceOnChange,
            "The key pair to log in with (its key_name); NULL for none",
        ),
        Column::new(
            "user_data",
            WriteOnly,
            "User data (plain text, base64-encoded for AWS): used at launch, or set to replace it (stop, modify, start); never stored",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new(
            "desired_state",
            Desired,
            "running (the default) or stopped: a change starts or stops the instance; sync reports where it is or is heading (pending counts as running, stopping as stopped), so a stop outside infrasql is drift here",
        ),
        Column::new(
            "root_volume_size",
            Desired,
            "Root volume size in GiB; NULL at launch means the image's size (then filled in); grows in place (ModifyVolume), never shrinks",
        ),
        Column::new(
            "root_volume_type",
            Desired,
            "Root volume type (gp2, gp3, io1, io2, st1, sc1, standard); NULL at launch means the image's type (then filled in); changed in place (ModifyVolume)",
        ),
        Column::new(
            "ebs_optimized",
            Desired,
            "EBS-optimized; NULL at launch means the type's default (then filled in); a change stops the instance, modifies it and starts it again",
        ),
        Column::new(
            "monitoring",
            Desired,
            "Detailed (1-minute) CloudWatch monitoring; NULL at launch means off (then filled in)",
        ),
        Column::reference(
            "iam_instance_profile",
            Desired,
            "iam_instance_profile",
            "The IAM instance profile it runs with, by name (NULL: none); changed in place (associate, replace the association, disassociate)",
        ),
        Column::new(
            "state",
            CloudAssigned,
            "pending, running, stopping or stopped",
        ),
        Column::member_set(
            "security_group_ids",
            "security_group",
            MemberSet {
                table: "instance_security_group",
                owner: "instance_id",
                member: "group_id",
            },
            "Its security groups, one row each; none means the VPC's default group (sync then adds its row)",
        ),
        Column::new("vpc_id", CloudAssigned, "The VPC of its subnet"),
        Column::new("availability_zone", CloudAssigned, "Its availability zone"),
        Column::new(
            "private_ip_address",
            CloudAssigned,
            "Primary private IPv4 address",
        ),
        Column::new(
            "public_ip_address",
            CloudAssigned,
            "Public IPv4 address, if any",
        ),
        Column::new("private_dns_name", CloudAssigned, "Private DNS name"),
        Column::new(
            "public_dns_name",
            CloudAssigned,
            "Public DNS name, if any",
        ),
        Column::new("launch_time", CloudAssigned, "When it was last started"),
        Column::new("architecture", CloudAssigned, "x86_64, arm64..."),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: Some("the data on its root volume and any instance-store volumes (deleted when the old instance is terminated)"),
};

/// The instance type of a row that does not name one (also the table's default).
pub(super) const DEFAULT_TYPE: &str = "t3.micro";
