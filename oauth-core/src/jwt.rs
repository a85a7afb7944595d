//! Access-token claims in the RFC 9068 shape, and their validation.
//!
//! Signature checks live in [`JosekitKeyManager`](crate::JosekitKeyManager); this module decides whether a correctly signed claim set is
//! acceptable *now*, *here*: `iss` is ours byte for byte, `aud` is the resource being accessed, `exp`/`nbf`/`iat`
//! hold against the injected clock with a small leeway.

use serde::{Deserialize, Serialize};

/// The claims of our access tokens (RFC 9068 §2.2, plus identity claims from RFC 9068 §2.2.1/OIDC Core §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user.
    pub sub: String,
    /// Audience: the protected resource (RFC 8707).
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Expiry.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// Token identifier.
    pub jti: String,
    /// The grant (token family) this token belongs to; revoking the grant revokes the token.
    pub sid: String,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Not before (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl AccessTokenClaims {
    /// The claims as a JSON object, as the signer wants them.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Reads claims from a verified JSON object.
    ///
    /// # Errors
    /// A reason if a required claim is missing or has the wrong type.
    pub fn from_map(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, &'static str> {
        // `aud` may legally be an array (RFC 7519 §4.1.3); ours is always a single string.
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|_| "token claims are malformed")
    }
}

/// Why a correctly signed token is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimsRejection {
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    /// `iss` is not ours.
    WrongIssuer,
    /// `aud` is not the resource being accessed.
    WrongAudience,
}

impl ClaimsRejection {
    /// A description for `error_description`.
    pub fn describe(self) -> &'static str {
        match self {
            ClaimsRejection::Expired => "the access token has expired",
            ClaimsRejection::NotYetValid => "the access token is not valid yet",
            ClaimsRejection::WrongIssuer => {
                "the access token was not issued by this authorization server"
            }
            ClaimsRejection::WrongAudience => "the access token was not issued for this resource",
        }
    }
}

/// Checks time claims against `now` (seconds) with `leeway` seconds of tolerance.
///
/// # Errors
/// [`ClaimsRejection::Expired`] or [`ClaimsRejection::NotYetValid`].
pub fn check_time(
    claims: &AccessTokenClaims,
    now: u64,
    leeway: u64,
) -> Result<(), ClaimsRejection> {
    if now >= claims.exp.saturating_add(leeway) {
        return Err(ClaimsRejection::Expired);
    }
    let not_before = claims.nbf.unwrap_or(claims.iat);
    if not_before > now.saturating_add(leeway) {
        return Err(ClaimsRejection::NotYetValid);
    }
    Ok(())
}

/// Full validation: time, issuer, and (when given) audience.
///
/// # Errors
/// The first failing check.
pub fn validate(
    claims: &AccessTokenClaims,
    now: u64,
    leeway: u64,
    issuer: &str,
    audience: Option<&str>,
) -> Result<(), ClaimsRejection> {
    check_time(claims, now, leeway)?;
    if claims.iss != issuer {
        return Err(ClaimsRejection::WrongIssuer);
    }
    if audience.is_some_and(|aud| claims.aud != aud) {
        return Err(ClaimsRejection::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ISSUER: &str = "https://auth.example.com";
    const AUDIENCE: &str = "https://mcp.example.com/mcp";

    /// Issued at 1000, expiring at 2000, no `nbf`.
    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "local:alice".into(),
            aud: AUDIENCE.into(),
            client_id: "client-1".into(),
            scope: "mcp".into(),
            exp: 2000,
            iat: 1000,
            jti: "jti-1".into(),
            sid: "grant-1".into(),
            preferred_username: None,
            email: None,
            name: None,
            groups: Vec::new(),
            nbf: None,
        }
    }

    /// With `leeway`, `c` is still acceptable at `valid` and refused as `rejected` at `invalid`, one second on.
    fn edge(
        c: &AccessTokenClaims,
        rejected: ClaimsRejection,
        leeway: u64,
        valid: u64,
        invalid: u64,
    ) {
        assert_eq!(check_time(c, valid, leeway), Ok(()), "at {valid}");
        assert_eq!(
            check_time(c, invalid, leeway),
            Err(rejected),
            "at {invalid}"
        );
    }

    #[test]
    fn expiry_holds_up_to_the_leeway_and_not_one_second_more() {
        edge(&claims(), ClaimsRejection::Expired, 0, 1999, 2000);
        edge(&claims(), ClaimsRejection::Expired, 30, 2029, 2030);
        let forever = AccessTokenClaims {
            exp: u64::MAX,
            ..claims()
        };
        assert_eq!(check_time(&forever, u64::MAX - 1, 30), Ok(()));
    }

    #[test]
    fn a_token_from_the_future_is_accepted_only_within_the_leeway() {
        edge(&claims(), ClaimsRejection::NotYetValid, 0, 1000, 999);
        edge(&claims(), ClaimsRejection::NotYetValid, 30, 970, 969);
        // `nbf`, when present, is the one that counts, later or earlier than `iat`.
        let later = AccessTokenClaims {
            nbf: Some(1500),
            ..claims()
        };
        edge(&later, ClaimsRejection::NotYetValid, 30, 1470, 1469);
        let earlier = AccessTokenClaims {
            nbf: Some(500),
            ..claims()
        };
        assert_eq!(check_time(&earlier, 600, 0), Ok(()));
    }

    #[test]
    fn validate_wants_our_issuer_byte_for_byte_and_the_audience_when_given() {
        let c = claims();
        assert_eq!(validate(&c, 1500, 30, ISSUER, None), Ok(()));
        assert_eq!(validate(&c, 1500, 30, ISSUER, Some(AUDIENCE)), Ok(()));
        for other in [
            "https://impostor.example.com",
            "https://auth.example.com/",
            "https://Auth.example.com",
            "",
        ] {
            assert_eq!(
                validate(&c, 1500, 30, other, None),
                Err(ClaimsRejection::WrongIssuer),
                "{other:?}"
            );
        }
        assert_eq!(
            validate(&c, 1500, 30, ISSUER, Some("https://mcp.example.com/other")),
            Err(ClaimsRejection::WrongAudience)
        );
        assert_eq!(
            validate(&c, 1500, 30, ISSUER, Some("https://mcp.example.com/mcp/")),
            Err(ClaimsRejection::WrongAudience)
        );
    }

    #[test]
    fn validate_reports_time_first_then_issuer_then_audience() {
        let c = claims();
        let impostor = "https://impostor.example.com";
        let elsewhere = Some("https://mcp.example.com/other");
        assert_eq!(
            validate(&c, 2030, 30, impostor, elsewhere),
            Err(ClaimsRejection::Expired)
        );
        assert_eq!(
            validate(&c, 969, 30, impostor, elsewhere),
            Err(ClaimsRejection::NotYetValid)
        );
        assert_eq!(
            validate(&c, 1500, 30, impostor, elsewhere),
            Err(ClaimsRejection::WrongIssuer)
        );
    }

    #[test]
    fn each_rejection_has_its_own_description() {
        for (rejection, description) in [
            (ClaimsRejection::Expired, "the access token has expired"),
            (
                ClaimsRejection::NotYetValid,
                "the access token is not valid yet",
            ),
            (
                ClaimsRejection::WrongIssuer,
                "the access token was not issued by this authorization server",
            ),
            (
                ClaimsRejection::WrongAudience,
                "the access token was not issued for this resource",
            ),
        ] {
            assert_eq!(rejection.describe(), description);
        }
    }

    #[test]
    fn claims_round_trip_through_the_signer_map_without_empty_optionals() {
        let c = claims();
        let map = c.to_map();
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "aud",
                "client_id",
                "exp",
                "iat",
                "iss",
                "jti",
                "scope",
                "sid",
                "sub"
            ]
        );
        assert_eq!(map.get("exp"), Some(&serde_json::json!(2000)));
        assert_eq!(AccessTokenClaims::from_map(map), Ok(c));

        let full = AccessTokenClaims {
            preferred_username: Some("alice".into()),
            email: Some("alice@example.com".into()),
            name: Some("Alice".into()),
            groups: vec!["staff".into()],
            nbf: Some(1000),
            ..claims()
        };
        let map = full.to_map();
        assert_eq!(map.get("groups"), Some(&serde_json::json!(["staff"])));
        assert_eq!(map.get("nbf"), Some(&serde_json::json!(1000)));
        assert_eq!(AccessTokenClaims::from_map(map), Ok(full));
    }

    #[test]
    fn claims_of_another_shape_are_malformed() {
        // RFC 7519 allows an array `aud`; ours never is, so such a token is not one of ours.
        let mut map = claims().to_map();
        map.insert("aud".into(), serde_json::json!([AUDIENCE]));
        assert_eq!(
            AccessTokenClaims::from_map(map),
            Err("token claims are malformed")
        );
        let mut map = claims().to_map();
        map.remove("sid");
        assert_eq!(
            AccessTokenClaims::from_map(map),
            Err("token claims are malformed")
        );
    }
}
