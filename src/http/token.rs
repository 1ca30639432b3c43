//! HTTP tokens as bytes, no I/O (pure, unit-tested): a token is 32 random
//! bytes, shown as `isq_` and URL-safe base64; the database keeps only its
//! SHA-256 (`infra.http_token.token_hash`), so a copy of the table or a
//! backup grants nothing.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Marks a string as an infrasql token (secret scanners key on prefixes).
pub const PREFIX: &str = "isq_";

/// A new token: 256 bits from the operating system's generator.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the database stores and looks a token up by: SHA-256, lower-case hex.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token of an `Authorization` header value: `Bearer <token>` (the
/// scheme in any case, RFC 7235). `None` for another scheme or no token.
pub fn from_header(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The cookie `/login` sets for a browser, which cannot add a header.
pub const COOKIE: &str = "infrasql_token";

/// The token in a `Cookie` header value (`a=1; infrasql_token=isq_...`).
pub fn from_cookie(value: &str) -> Option<&str> {
    value
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed_to_hex() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX), "{a}");
        assert_eq!(a.len(), PREFIX.len() + 43, "{a}");
        let h = hash(&a);
        assert_eq!(h.len(), 64);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        assert_eq!(from_header("Bearer isq_x"), Some("isq_x"));
        assert_eq!(from_header("bearer  isq_x "), Some("isq_x"));
        assert_eq!(from_header("Basic dXNlcjpwdw=="), None);
        assert_eq!(from_header("Bearer"), None);
        assert_eq!(from_header("Bearer "), None);
        assert_eq!(from_header("Bearer a b"), None);
    }

    #[test]
    fn a_browser_sends_it_as_a_cookie() {
        assert_eq!(from_cookie("infrasql_token=isq_x"), Some("isq_x"));
        assert_eq!(from_cookie("a=1; infrasql_token=isq_x; b=2"), Some("isq_x"));
        assert_eq!(from_cookie("xinfrasql_token=isq_x"), None);
        assert_eq!(from_cookie("infrasql_token="), None);
    }
}
