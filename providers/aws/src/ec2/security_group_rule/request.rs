//! A rule's row as the shapes AWS's calls take: the IpPermission of an
//! Authorize call, the SecurityGroupRuleRequest of ModifySecurityGroupRules.

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, SecurityGroupRuleRequest, UserIdGroupPair,
};
use infrasql_provider::{Props, PropsExt, ProviderError};

fn i32_of(p: &Props, key: &str) -> Result<Option<i32>, ProviderError> {
    match p.i64(key) {
        None => Ok(None),
        Some(v) => i32::try_from(v)
            .map(Some)
            .map_err(|_| ProviderError::invalid(format!("{key} {v} is out of range"))),
    }
}

/// The one source (ingress) or destination (egress) a row names.
enum Peer<'a> {
    Ipv4(&'a str),
    Ipv6(&'a str),
    PrefixList(&'a str),
    Group(&'a str),
}

fn peer(p: &Props) -> Result<Peer<'_>, ProviderError> {
    let set: Vec<Peer> = [
        p.str("cidr_ipv4").map(Peer::Ipv4),
        p.str("cidr_ipv6").map(Peer::Ipv6),
        p.str("prefix_list_id").map(Peer::PrefixList),
        p.str("referenced_group_id").map(Peer::Group),
    ]
    .into_iter()
    .flatten()
    .collect();
    let n = set.len();
    match set.into_iter().next() {
        Some(one) if n == 1 => Ok(one),
        _ => Err(ProviderError::invalid(
            "a security group rule needs exactly one of cidr_ipv4, cidr_ipv6, prefix_list_id, referenced_group_id",
        )),
    }
}

/// The IpPermission an Authorize call needs for this row.
pub(super) fn permission(p: &Props) -> Result<IpPermission, ProviderError> {
    let proto = p.req_str("ip_protocol")?;
    let desc = p.str("description").map(str::to_owned);
    let mut b = IpPermission::builder().ip_protocol(proto);
    if proto != "-1" {
        b = b
            .set_from_port(i32_of(p, "from_port")?)
            .set_to_port(i32_of(p, "to_port")?);
    }
    b = match peer(p)? {
        Peer::Ipv4(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).set_description(desc).build()),
        Peer::Ipv6(c) => b.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(c)
                .set_description(desc)
                .build(),
        ),
        Peer::PrefixList(id) => b.prefix_list_ids(
            PrefixListId::builder()
                .prefix_list_id(id)
                .set_description(desc)
                .build(),
        ),
        Peer::Group(id) => b.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(id)
                .set_description(desc)
                .build(),
        ),
    };
    Ok(b.build())
}

/// The whole rule as ModifySecurityGroupRules wants it.
pub(super) fn rule_request(p: &Props) -> Result<SecurityGroupRuleRequest, ProviderError> {
    let proto = p.req_str("ip_protocol")?;
    let (from, to) = if proto == "-1" {
        (Some(-1), Some(-1))
    } else {
        (i32_of(p, "from_port")?, i32_of(p, "to_port")?)
    };
    let b = SecurityGroupRuleRequest::builder()
        .ip_protocol(proto)
        .set_from_port(from)
        .set_to_port(to)
        // An empty description clears it.
        .description(p.str("description").unwrap_or(""));
    Ok(match peer(p)? {
        Peer::Ipv4(c) => b.cidr_ipv4(c),
        Peer::Ipv6(c) => b.cidr_ipv6(c),
        Peer::PrefixList(id) => b.prefix_list_id(id),
        Peer::Group(id) => b.referenced_group_id(id),
    }
    .build())
}

#[cfg(test)]
mod tests {
    use infrasql_provider::ErrorClass;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_rule_needs_exactly_one_peer() {
        let two = json!({"ip_protocol": "tcp", "from_port": 22, "to_port": 22,
                         "cidr_ipv4": "10.0.0.0/8", "referenced_group_id": "sg-1"});
        let err = permission(two.as_object().unwrap()).unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        let none = json!({"ip_protocol": "tcp", "from_port": 22, "to_port": 22});
        let err = permission(none.as_object().unwrap()).unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        let ok = json!({"ip_protocol": "-1", "from_port": null, "to_port": null,
                        "cidr_ipv6": "::/0", "description": "all out"});
        let perm = permission(ok.as_object().unwrap()).unwrap();
        assert_eq!(perm.from_port(), None);
        assert_eq!(perm.ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(perm.ipv6_ranges()[0].description(), Some("all out"));
    }
}
