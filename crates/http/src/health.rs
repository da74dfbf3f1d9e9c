//! The status code of `sys/health`.
//!
//! Load balancers and orchestrators read only the code, and they configure it through query
//! parameters (`standbyok`, `sealedcode`, ...), so the choice is a pure function of the node's
//! state and the query: easy to test for every state and override.

use http::StatusCode;
use strongroom_core::HealthState;

use crate::parse::{BadRequest, parse_bool, query_value};

/// The code `sys/health` answers with for `state`, honouring the query overrides.
pub(crate) fn status_code(
    state: HealthState,
    query: &[(String, String)],
) -> Result<StatusCode, BadRequest> {
    let flag = |name: &str| -> Result<bool, BadRequest> {
        match query_value(query, name) {
            None => Ok(false),
            // `?standbyok` with no value means true, as in Vault.
            Some("") => Ok(true),
            Some(v) => parse_bool(v).ok_or_else(|| {
                BadRequest::new(format!(
                    "invalid value {v:?} for {name}: expected a boolean"
                ))
            }),
        }
    };
    let code = |name: &str, default: u16| -> Result<StatusCode, BadRequest> {
        let n = match query_value(query, name) {
            None | Some("") => default,
            Some(v) => v.parse::<u16>().map_err(|_| {
                BadRequest::new(format!(
                    "invalid value {v:?} for {name}: expected an HTTP status code"
                ))
            })?,
        };
        StatusCode::from_u16(n)
            .ok()
            .filter(|s| (200..600).contains(&s.as_u16()))
            .ok_or_else(|| {
                BadRequest::new(format!(
                    "invalid value {n} for {name}: expected an HTTP status code"
                ))
            })
    };
    // Validate every parameter, even those this node's state does not use, so a typo in a
    // load balancer's health check shows up immediately instead of when the node changes state.
    let standby_ok = flag("standbyok")?;
    let _perf_standby_ok = flag("perfstandbyok")?;
    let active = code("activecode", 200)?;
    let standby = code("standbycode", 429)?;
    let dr_secondary = code("drsecondarycode", 472)?;
    let _perf_standby = code("performancestandbycode", 473)?;
    let sealed = code("sealedcode", 503)?;
    let uninit = code("uninitcode", 501)?;
    let ha_unhealthy = code("haunhealthycode", 474)?;
    let removed = code("removedcode", 530)?;
    Ok(match state {
        HealthState::Removed => removed,
        HealthState::StandbyUnhealthy => ha_unhealthy,
        HealthState::NotInitialized => uninit,
        HealthState::Sealed => sealed,
        HealthState::Standby if standby_ok => active,
        HealthState::Standby => standby,
        HealthState::Active => active,
        HealthState::DrSecondary => dr_secondary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        crate::parse::query_pairs(Some(s))
    }

    #[test]
    fn defaults_follow_the_spec() {
        // Load balancers rely on these exact defaults to route only to the active node.
        assert_eq!(status_code(HealthState::Active, &[]).unwrap(), 200);
        assert_eq!(status_code(HealthState::Standby, &[]).unwrap(), 429);
        assert_eq!(status_code(HealthState::Sealed, &[]).unwrap(), 503);
        assert_eq!(status_code(HealthState::NotInitialized, &[]).unwrap(), 501);
    }

    #[test]
    fn each_override_changes_only_its_state() {
        // An override must apply to its own state and leave the others alone.
        let all = q("activecode=201&standbycode=202&sealedcode=203&uninitcode=204");
        assert_eq!(status_code(HealthState::Active, &all).unwrap(), 201);
        assert_eq!(status_code(HealthState::Standby, &all).unwrap(), 202);
        assert_eq!(status_code(HealthState::Sealed, &all).unwrap(), 203);
        assert_eq!(status_code(HealthState::NotInitialized, &all).unwrap(), 204);
        assert_eq!(
            status_code(HealthState::Standby, &q("standbyok=true")).unwrap(),
            200
        );
        assert_eq!(
            status_code(HealthState::Standby, &q("standbyok")).unwrap(),
            200
        );
        assert_eq!(
            status_code(HealthState::Standby, &q("standbyok=false")).unwrap(),
            429
        );
        assert_eq!(
            status_code(HealthState::Standby, &q("standbyok=true&activecode=299")).unwrap(),
            299
        );
    }

    #[test]
    fn garbage_overrides_are_client_errors() {
        // A typo in a health check must be a 400, not a silently ignored parameter.
        assert!(status_code(HealthState::Active, &q("sealedcode=abc")).is_err());
        assert!(status_code(HealthState::Active, &q("activecode=99")).is_err());
        assert!(status_code(HealthState::Active, &q("standbyok=maybe")).is_err());
        assert!(status_code(HealthState::Active, &q("drsecondarycode=x")).is_err());
    }
}
