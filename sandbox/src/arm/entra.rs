//! Entra ID for one tenant, as MSAL inside az 2.91 uses it: the cloud
//! metadata (`az cloud register`), the tenant's OpenID configuration and
//! the v2.0 token endpoint for the client-credentials grant of the one
//! service principal the stand-in knows.
//!
//! A wrong secret is refused as Entra ID refuses it: 401 `invalid_client`
//! with AADSTS7000215; an unknown app id: 400 `unauthorized_client` with
//! AADSTS700016.

use super::{Arm, ArmReq, APP_ID, CLOUD, TENANT};
use crate::http::Response;
use anyhow::Result;
use serde_json::{json, Value};

/// `GET /metadata/endpoints?api-version=2022-09-01`: every endpoint is the
/// stand-in, login and audience included.
pub fn metadata(base: &str) -> Value {
    let u = |p: &str| format!("{base}/{p}");
    json!({
        "name": CLOUD,
        "resourceManager": u(""),
        "portal": u("portal"),
        "galleryEndpoint": u("gallery"),
        "graphAudience": u("graph/"),
        "graph": u("graph/"),
        "microsoftGraphResourceId": u("msgraph/"),
        "graphEndpoint": u("graph/"),
        "sqlManagement": u("sql/"),
        "batch": u("batch/"),
        "media": u("media/"),
        "vmImageAliasDoc": u("vmimagealiases.json"),
        "authentication": {
            "loginEndpoint": base,
            "audiences": [u("")],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {"storage": "core.nexy.invalid", "keyVaultDns": "vault.nexy.invalid"},
    })
}

fn openid(base: &str, tenant: &str) -> Value {
    let t = |p: &str| format!("{base}/{tenant}/{p}");
    json!({
        "token_endpoint": t("oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": t("discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": t("v2.0"),
        "authorization_endpoint": t("oauth2/v2.0/authorize"),
        "device_authorization_endpoint": t("oauth2/v2.0/devicecode"),
        "end_session_endpoint": t("oauth2/v2.0/logout"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "nexy.invalid",
    })
}

fn aad_error(status: u16, error: &str, code: u32, text: &str) -> Response {
    let now = crate::util::iso_utc(crate::util::now_ms());
    Response::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: {now}"),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// The Entra routes; `None` for anything else.
pub fn handle(arm: &Arm, req: &ArmReq) -> Result<Option<Response>> {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let base = arm.base();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            if !tenant.eq_ignore_ascii_case(TENANT) && *tenant != "organizations" {
                return Ok(Some(aad_error(
                    400,
                    "invalid_tenant",
                    90002,
                    &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                )));
            }
            Ok(Some(Response::json(200, &openid(&base, tenant))))
        }
        ("POST", [_tenant, "oauth2", "v2.0", "token"]) => Ok(Some(token(arm, req)?)),
        _ => Ok(None),
    }
}

fn token(arm: &Arm, req: &ArmReq) -> Result<Response> {
    let form = crate::util::parse_query(&String::from_utf8_lossy(&req.body));
    let get = |k: &str| {
        form.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if get("grant_type") != "client_credentials" {
        return Ok(aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ));
    }
    if get("client_id") != APP_ID {
        return Ok(aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory 'Nexy Local'.",
                get("client_id")
            ),
        ));
    }
    if get("client_secret") != arm.secret() {
        return Ok(aad_error(
            401,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{APP_ID}'."),
        ));
    }
    let access = arm.issue_token()?;
    Ok(Response::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access}),
    ))
}
