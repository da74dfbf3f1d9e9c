//! The policies every server has without anyone writing them.
//!
//! `default` is attached to nearly every token, so its text decides what a freshly logged-in
//! client can do on its own (look itself up, renew, use its cubbyhole, unwrap). It is written
//! to storage on first use so operators can edit it; `root` and `response-wrapping` are
//! virtual and immutable.

/// The root policy: grants everything, has no text, cannot be changed.
pub const ROOT: &str = "root";
/// Attached to every non-root token unless `no_default_policy`.
pub const DEFAULT: &str = "default";
/// Carried by response-wrapping tokens; not listed, not writable.
pub const RESPONSE_WRAPPING: &str = "response-wrapping";

/// Stock text of the `default` policy.
pub const DEFAULT_POLICY: &str = r#"# Stock default policy: what any ordinary token may do about itself.

# Token self-service: look up, renew and revoke the calling token.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }

# Ask which capabilities the calling token has.
path "sys/capabilities-self" { capabilities = ["update"] }

# Own identity entity (templated; inert until an identity engine exists).
path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }
path "identity/entity/name/{{identity.entity.name}}" { capabilities = ["read"] }

# The UI's view of the caller's merged ACL.
path "sys/internal/ui/resultant-acl" { capabilities = ["read"] }

# Lease renewal (legacy and current paths) and lease lookup.
path "sys/renew" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }

# The token's private cubbyhole.
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }

# Response wrapping: wrap values, inspect and unwrap wrapping tokens.
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }

# Hashing tools.
path "sys/tools/hash" { capabilities = ["update"] }
path "sys/tools/hash/*" { capabilities = ["update"] }

# Control-group request status (Enterprise feature; harmless here).
path "sys/control-group/request" { capabilities = ["update"] }

# OIDC provider authorization endpoint.
path "identity/oidc/provider/+/authorize" { capabilities = ["read", "update"] }
"#;

/// Text of the internal policy of response-wrapping tokens.
pub const RESPONSE_WRAPPING_POLICY: &str = r#"path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_policy::{READ, UPDATE, parse_policy};

    #[test]
    fn builtin_texts_parse_and_grant_what_the_spec_lists() {
        // Why: a typo here would lock every ordinary token out of lookup-self and unwrap.
        let d = parse_policy(DEFAULT_POLICY).unwrap();
        let caps = |p: &str| d.paths.iter().find(|r| r.pattern == p).map(|r| r.caps);
        assert_eq!(caps("auth/token/lookup-self"), Some(READ));
        assert_eq!(caps("sys/capabilities-self"), Some(UPDATE));
        assert_eq!(caps("sys/wrapping/unwrap"), Some(UPDATE));
        assert_eq!(
            caps("identity/oidc/provider/+/authorize"),
            Some(READ | UPDATE)
        );
        assert!(caps("cubbyhole/*").is_some());
        assert_eq!(
            parse_policy(RESPONSE_WRAPPING_POLICY).unwrap().paths.len(),
            2
        );
    }
}
