//! Bearer tokens checked on the execute path (and any admin route), compared in constant time.
//! Which tokens, and whether they are required, is the config's
//! ([`config::AuthConfig`](crate::config::AuthConfig)).

use subtle::ConstantTimeEq;

/// Whether an `Authorization` header value carries one of `tokens`, compared in constant time
/// (every token is compared, whatever matched first). The scheme is case-insensitive (RFC 9110,
/// 11.1: `bearer` and `BEARER` are `Bearer`); the token is not.
pub(crate) fn authorized(header: Option<&[u8]>, tokens: &[String]) -> bool {
    let Some((scheme, presented)) = header.and_then(|value| {
        let space = value.iter().position(|&b| b == b' ')?;
        Some((value.get(..space)?, value.get(space + 1..)?))
    }) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return false;
    }
    let mut any = subtle::Choice::from(0);
    for token in tokens {
        // `ct_eq` on slices of different lengths is false (the length itself is not secret).
        any |= presented.ct_eq(token.as_bytes());
    }
    any.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let tokens = vec![
            "0123456789abcdef".to_owned(),
            "fedcba9876543210xx".to_owned(),
        ];
        assert!(authorized(Some(b"Bearer 0123456789abcdef"), &tokens));
        assert!(authorized(Some(b"Bearer fedcba9876543210xx"), &tokens));
        assert!(!authorized(Some(b"Bearer 0123456789abcdeF"), &tokens));
        assert!(!authorized(Some(b"Bearer 0123456789abcde"), &tokens));
        assert!(authorized(Some(b"bearer 0123456789abcdef"), &tokens));
        assert!(authorized(Some(b"BEARER 0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"Basic 0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"Bearer0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"0123456789abcdef"), &tokens));
        assert!(!authorized(None, &tokens));
        assert!(!authorized(Some(b"Bearer "), &[]));
    }
}
