//! How Route53 spells zone ids and domain names, and the stable keys its
//! create calls take.

/// A zone id without AWS's `/hostedzone/` prefix (the form the console
/// shows and every call accepts).
pub fn zone_id(aws: &str) -> String {
    aws.trim_start_matches("/hostedzone/").to_owned()
}

/// A domain name as Route53 answers it: lower case, ending in a dot, with
/// the octal escapes it uses for `*` and other specials undone. The schema
/// files normalise what users write the same way (lower case, final dot),
/// so a row and the listing agree.
pub fn fqdn(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3 && digits.chars().all(|d| d.is_digit(8)) {
                if let Some(ch) = u32::from_str_radix(&digits, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    out.push(ch);
                    for _ in 0..3 {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// FNV-1a, seeded: stable across processes and Rust versions (unlike
/// std's hasher), which a caller reference needs.
pub fn fnv(s: &str, seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(seed).chain(s.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_lose_the_prefix_and_names_gain_the_dot() {
        assert_eq!(zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(zone_id("Z123"), "Z123");
        assert_eq!(fqdn("WWW.Example.com"), "www.example.com.");
        assert_eq!(fqdn("example.com."), "example.com.");
        assert_eq!(fqdn("\\052.example.com."), "*.example.com.");
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(fnv("", 0), fnv("", 0));
        assert_ne!(fnv("a", 0), fnv("a", 1));
    }
}
