//! Canonical layout of an HCL policy, for `policy fmt`.
//!
//! Formatting never changes what a policy means, and refuses whatever the server would refuse:
//! the document is parsed by the same grammar first. Comments are not kept (the HCL printer
//! has no place for them), as with the formatter this replaces.

use hcl::format::Format as _;

use crate::error::PolicyError;
use crate::parse::parse_policy;

/// Checks `text` with the server's grammar and renders it in canonical HCL layout.
pub fn format_policy(text: &str) -> Result<String, PolicyError> {
    parse_policy(text)?;
    if text.trim_start().starts_with('{') {
        return Err(PolicyError::at(
            Some(1),
            "only HCL policies can be formatted; this one is JSON",
        ));
    }
    let body: hcl::Body = hcl::parse(text).map_err(|e| PolicyError::at(None, e.to_string()))?;
    let mut formatter = hcl::format::Formatter::builder()
        .compact_arrays(true)
        .build_vec();
    body.format_string(&mut formatter)
        .map_err(|e| PolicyError::at(None, format!("formatting the policy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messy_policies_come_out_in_one_layout() {
        // Why: `policy fmt` output is what goes to review; it must be stable.
        let messy = "path   \"secret/*\"   {\ncapabilities=[\"read\",\"list\"]\n}\n\n\n\
                     path \"sys/x\" { policy = \"deny\" }";

        let out = format_policy(messy).unwrap();

        assert_eq!(
            out,
            "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\n\
             path \"sys/x\" {\n  policy = \"deny\"\n}\n"
        );
        assert_eq!(format_policy(&out).unwrap(), out);
    }

    #[test]
    fn json_policies_are_checked_but_not_formatted() {
        // Why: a valid JSON policy is not an error of the policy, but there is no HCL to lay out.
        let err = format_policy(r#"{"path": {"a": {"capabilities": ["read"]}}}"#).unwrap_err();
        assert!(err.message.contains("JSON"), "{err}");
        let bad = format_policy(r#"{"path": {"a": {"capabilities": ["fly"]}}}"#).unwrap_err();
        assert!(bad.message.contains("invalid capability"), "{bad}");
    }
}
