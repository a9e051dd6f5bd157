//! Handlers of the passkey operations: register (start/finish), list, delete, and passkey
//! login (start/finish).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, WebauthnError,
};

use super::ceremony::{self, Kind, Pending};
use super::model::{PASSKEY_COLUMNS, PasskeyRow, PasskeyView, all_of_user, load_own, view_json};
use crate::app::AppState;
use crate::audit::{self, AuditActor};
use crate::auth::session::{self, OPERATOR_COOKIE, SessionSpec, Subject};
use crate::auth::{Actor, ActorKind, ClientInfo};
use crate::db::{SqlBuilder, Tx};
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::ApiJson;
use crate::http::pagination::{Page, PageRequest};
use crate::http::validate::Validator;
use crate::identity::{UserView, load_tenant, load_user};
use crate::util::now;

/// More than this many passkeys per user is refused: the list is sent to the browser on
/// every login.
pub const MAX_PASSKEYS_PER_USER: usize = 20;
const LABEL_MAX: usize = 100;

/// Passkeys belong to a person signed in with a session: an API key cannot enrol or remove
/// them, and an impersonating operator must not plant a credential on someone else's account.
fn signed_in_user(actor: &Actor, changing: bool) -> ApiResult<&str> {
    let user_id = match (actor.kind, actor.user_id.as_deref()) {
        (ActorKind::User, Some(id)) => id,
        _ => {
            return Err(ApiError::Forbidden(
                "Passkeys are managed from a signed-in session, not with an API key.".into(),
            ));
        }
    };
    if changing && actor.impersonator_id.is_some() {
        return Err(ApiError::Forbidden(
            "Passkeys cannot be changed while impersonating a user.".into(),
        ));
    }
    Ok(user_id)
}

fn limit_reached() -> ApiError {
    ApiError::conflict(
        "passkey_limit_reached",
        format!("A user can have at most {MAX_PASSKEYS_PER_USER} passkeys; delete one first."),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterStartBody {
    label: Option<String>,
}

pub async fn register_start(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<RegisterStartBody>,
) -> ApiResult<Json<Value>> {
    let user_id = signed_in_user(&actor, true)?;
    let mut v = Validator::new();
    let label = v.required("label", b.label.as_deref()).map(str::to_string);
    v.max_len("label", label.as_deref(), LABEL_MAX);
    v.finish()?;
    let label = label.unwrap_or_default();

    let mut tx = st.db.begin().await?;
    let user = load_user(&mut *tx, &actor.tenant_id, user_id).await?;
    let tenant = load_tenant(&mut *tx, &actor.tenant_id).await?;
    let existing = all_of_user(&mut *tx, &actor.tenant_id, user_id).await?;
    if existing.len() >= MAX_PASSKEYS_PER_USER {
        return Err(limit_reached());
    }
    // Authenticators already enrolled are excluded, so the same device is not enrolled twice.
    let exclude = existing
        .iter()
        .map(|r| r.passkey().map(|p| p.cred_id().clone()))
        .collect::<ApiResult<Vec<_>>>()?;
    let rp = ceremony::relying_party(&st, Some(&tenant.name))?;
    let (options, state) = rp
        .start_passkey_registration(
            ceremony::user_handle(&actor.tenant_id, user_id),
            &user.email,
            &user.display_name,
            Some(exclude),
        )
        .map_err(|e| ApiError::internal(format!("start passkey registration: {e}")))?;
    let state = serde_json::to_string(&state).map_err(ApiError::internal)?;
    let stored = ceremony::store(
        &mut tx,
        &actor.tenant_id,
        user_id,
        Kind::Register,
        Some(&label),
        &state,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ceremony::options_body(&options, &stored)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterFinishBody {
    label: Option<String>,
    response: Option<Value>,
    challenge_id: Option<String>,
}

/// Parses the browser's credential JSON; its own errors name the path inside `response`.
fn parse_response<T: serde::de::DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "response".to_string()
        } else {
            format!("response.{path}")
        };
        ApiError::field(
            field,
            format!("is not a WebAuthn credential: {}", e.inner()),
        )
    })
}

fn bad_challenge(message: &str) -> ApiError {
    ApiError::field("challengeId", message)
}

const CHALLENGE_UNKNOWN: &str =
    "is not a pending challenge (unknown, already used or from another account); start again";
const CHALLENGE_EXPIRED: &str = "has expired; start again";

pub async fn register_finish(
    State(st): State<AppState>,
    actor: Actor,
    ApiJson(b): ApiJson<RegisterFinishBody>,
) -> ApiResult<(StatusCode, Json<PasskeyView>)> {
    let user_id = signed_in_user(&actor, true)?;
    let mut v = Validator::new();
    v.check(b.response.is_some(), "response", "is required");
    if let Some(l) = &b.label {
        v.check(!l.trim().is_empty(), "label", "cannot be blank");
    }
    v.max_len("label", b.label.as_deref(), LABEL_MAX);
    v.finish()?;
    let response: RegisterPublicKeyCredential = parse_response(b.response.unwrap_or(Value::Null))?;
    let requested = match b.challenge_id.as_deref() {
        Some(c) => {
            let (_, id) = ceremony::parse_challenge_id(c)
                .filter(|(t, _)| *t == actor.tenant_id)
                .ok_or_else(|| bad_challenge(CHALLENGE_UNKNOWN))?;
            Some(id.to_string())
        }
        None => None,
    };

    let mut tx = st.db.begin().await?;
    let id = match requested {
        Some(id) => id,
        None => ceremony::latest_registration(&mut tx, &actor.tenant_id, user_id)
            .await?
            .ok_or_else(|| {
                bad_challenge("is required: no registration is pending; call register/start first")
            })?,
    };
    let pending = match ceremony::consume(&mut tx, &actor.tenant_id, &id, Kind::Register).await? {
        Some(p) if p.user_id == user_id => p,
        // Another user's challenge is left where it was (the transaction is not committed).
        _ => return Err(bad_challenge(CHALLENGE_UNKNOWN)),
    };
    // From here on the challenge is spent whatever the outcome: a refusal still commits its
    // removal, so one challenge is never verified twice.
    if pending.expired() {
        tx.commit().await?;
        return Err(bad_challenge(CHALLENGE_EXPIRED));
    }
    let state: PasskeyRegistration =
        serde_json::from_str(&pending.state).map_err(ApiError::internal)?;
    let rp = ceremony::relying_party(&st, None)?;
    let passkey = match rp.finish_passkey_registration(&response, &state) {
        Ok(p) => p,
        Err(e) => {
            tx.commit().await?;
            return Err(ApiError::field("response", registration_refusal(&e)));
        }
    };
    let credential_id = ceremony::encode_credential_id(passkey.cred_id());
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM passkeys WHERE tenant_id = $1 AND credential_id = $2")
            .bind(&actor.tenant_id)
            .bind(&credential_id)
            .fetch_optional(&mut *tx)
            .await?;
    if taken.is_some() {
        tx.commit().await?;
        return Err(ApiError::conflict(
            "passkey_already_registered",
            "This authenticator's credential is already registered.",
        ));
    }
    // Checked again here: two registrations started side by side must not pass the limit.
    if all_of_user(&mut *tx, &actor.tenant_id, user_id)
        .await?
        .len()
        >= MAX_PASSKEYS_PER_USER
    {
        tx.commit().await?;
        return Err(limit_reached());
    }
    let label = b
        .label
        .map(|l| l.trim().to_string())
        .or(pending.label)
        .unwrap_or_else(|| "Passkey".into());
    let credential = serde_json::to_string(&passkey).map_err(ApiError::internal)?;
    let id = crate::util::new_id();
    sqlx::query(
        "INSERT INTO passkeys (tenant_id, id, user_id, label, credential_id, credential, sign_count, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&actor.tenant_id)
    .bind(&id)
    .bind(user_id)
    .bind(&label)
    .bind(&credential_id)
    .bind(&credential)
    .bind(stored_counter(&credential))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let view = PasskeyView::from(&load_own(&mut *tx, &actor.tenant_id, user_id, &id).await?);
    let after = view_json(&view);
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "passkey.created",
        "passkey",
        &id,
        &json!({"id": id, "userId": user_id, "label": view.label, "createdAt": view.created_at}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "passkey.create",
        "passkey",
        Some(&id),
        None,
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The counter the authenticator reported at registration (0 for most passkeys). Read back
/// from the credential's own serialisation; 0 is the safe floor if it is not there.
fn stored_counter(credential_json: &str) -> i64 {
    serde_json::from_str::<Value>(credential_json)
        .ok()
        .and_then(|v| v.pointer("/cred/counter").and_then(Value::as_i64))
        .unwrap_or(0)
}

fn registration_refusal(e: &WebauthnError) -> String {
    match e {
        WebauthnError::InvalidRPOrigin => {
            "was created for another origin than this site's (webauthn_origin)".into()
        }
        WebauthnError::InvalidRPIDHash => {
            "was created for another relying party than this site's (webauthn_rp_id)".into()
        }
        WebauthnError::MismatchedChallenge => "does not answer this challenge".into(),
        WebauthnError::UserNotVerified => {
            "lacks user verification (PIN or biometrics), which passkeys require".into()
        }
        other => format!("failed verification: {other}"),
    }
}

pub async fn list(
    State(st): State<AppState>,
    actor: Actor,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Page<PasskeyView>>> {
    let user_id = signed_in_user(&actor, false)?;
    let page = PageRequest::from_params(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )?;
    let mut b = SqlBuilder::new(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE tenant_id = "
    ));
    b.text(&actor.tenant_id);
    b.push(" AND user_id = ").text(user_id);
    if let Some(after) = &page.after_id {
        b.push(" AND id < ").text(after.clone());
    }
    b.push(" ORDER BY id DESC").limit(page.fetch());
    let rows: Vec<PasskeyRow> = b.query_as().fetch_all(st.db.pool()).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |r| &r.id).map(|r| PasskeyView::from(&r)),
    ))
}

pub async fn delete(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user_id = signed_in_user(&actor, true)?;
    let mut tx = st.db.begin().await?;
    let row = load_own(&mut *tx, &actor.tenant_id, user_id, &id).await?;
    let before = view_json(&PasskeyView::from(&row));
    sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3")
        .bind(&actor.tenant_id)
        .bind(user_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    events::emit(
        &mut tx,
        &actor.tenant_id,
        "passkey.deleted",
        "passkey",
        &id,
        &json!({"id": id, "userId": user_id}),
    )
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "passkey.delete",
        "passkey",
        Some(&id),
        Some(&before),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticateStartBody {
    email: Option<String>,
    tenant_slug: Option<String>,
}

/// Starts a passkey login. Whether the e-mail belongs to an active user with passkeys is not
/// revealed: anyone else gets decoy options of the same shape, with credential ids that are
/// stable per e-mail, and a stored challenge that can only fail.
pub async fn authenticate_start(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<AuthenticateStartBody>,
) -> ApiResult<Json<Value>> {
    let mut v = Validator::new();
    let email = v
        .required("email", b.email.as_deref())
        .map(|e| e.to_lowercase());
    v.email("email", email.as_deref());
    let slug = v
        .required("tenantSlug", b.tenant_slug.as_deref())
        .map(str::to_string);
    v.finish()?;
    let (email, slug) = (email.unwrap_or_default(), slug.unwrap_or_default());

    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
        .bind(&slug)
        .fetch_optional(st.db.pool())
        .await?;
    let Some((tenant_id,)) = tenant else {
        // Tenant slugs are public (sign-up reports a taken one), so nothing is stored for an
        // unknown tenant; the options still look like any other answer.
        let options = ceremony::decoy_options(&st, &ceremony::throwaway_key(), &email)?;
        let stored = ceremony::Stored {
            challenge_id: ceremony::challenge_id(&crate::util::new_id(), &crate::util::new_id()),
            expires_at: crate::util::fmt_time(
                chrono::Utc::now() + Duration::seconds(ceremony::CHALLENGE_TTL_SECS),
            ),
        };
        return ceremony::options_body(&options, &stored).map(Json);
    };

    let mut tx = st.db.begin().await?;
    let user: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE tenant_id = $1 AND email_lower = $2 AND deleted_at IS NULL AND status = 'active'",
    )
    .bind(&tenant_id)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    let passkeys = match &user {
        Some((uid,)) => all_of_user(&mut *tx, &tenant_id, uid)
            .await?
            .iter()
            .map(PasskeyRow::passkey)
            .collect::<ApiResult<Vec<Passkey>>>()?,
        None => Vec::new(),
    };
    let body = match user {
        Some((uid,)) if !passkeys.is_empty() => {
            let rp = ceremony::relying_party(&st, None)?;
            let (options, state) = rp
                .start_passkey_authentication(&passkeys)
                .map_err(|e| ApiError::internal(format!("start passkey authentication: {e}")))?;
            let state = serde_json::to_string(&state).map_err(ApiError::internal)?;
            let stored =
                ceremony::store(&mut tx, &tenant_id, &uid, Kind::Authenticate, None, &state)
                    .await?;
            ceremony::options_body(&options, &stored)?
        }
        _ => {
            let key = ceremony::decoy_key(&mut tx, &tenant_id).await?;
            let options = ceremony::decoy_options(&st, &key, &email)?;
            // A decoy row (no user, no state) makes finishing it fail exactly like a real
            // challenge answered with a bad assertion.
            let stored =
                ceremony::store(&mut tx, &tenant_id, "", Kind::Authenticate, None, "").await?;
            ceremony::options_body(&options, &stored)?
        }
    };
    tx.commit().await?;
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticateFinishBody {
    response: Option<Value>,
    challenge_id: Option<String>,
}

/// The one answer for every assertion that does not log anyone in, so a caller learns
/// nothing about the account behind a challenge.
const REJECTED: ApiError = ApiError::Unauthorized("invalid_credentials");

pub async fn authenticate_finish(
    State(st): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(b): ApiJson<AuthenticateFinishBody>,
) -> ApiResult<Response> {
    let mut v = Validator::new();
    v.check(b.response.is_some(), "response", "is required");
    let challenge = v
        .required("challengeId", b.challenge_id.as_deref())
        .map(str::to_string);
    v.finish()?;
    let response: PublicKeyCredential = parse_response(b.response.unwrap_or(Value::Null))?;
    let challenge = challenge.unwrap_or_default();
    let (tenant_id, challenge_row) =
        ceremony::parse_challenge_id(&challenge).ok_or_else(|| bad_challenge(CHALLENGE_UNKNOWN))?;

    let mut tx = st.db.begin().await?;
    let pending = ceremony::consume(&mut tx, tenant_id, challenge_row, Kind::Authenticate)
        .await?
        .ok_or_else(|| bad_challenge(CHALLENGE_UNKNOWN))?;
    // The challenge is spent from here on: every refusal below commits its removal.
    if pending.expired() {
        tx.commit().await?;
        return Err(bad_challenge(CHALLENGE_EXPIRED));
    }
    match verify_assertion(&st, &mut tx, tenant_id, &pending, &response).await? {
        Verdict::Accepted(row) => {
            let user = load_user(&mut *tx, tenant_id, &row.user_id).await?;
            login(&st, tx, &client, &headers, tenant_id, &user, &row.id).await
        }
        Verdict::CloneSuspected(row, reported) => {
            record_clone_suspicion(&mut tx, &client, tenant_id, &row, reported).await?;
            tx.commit().await?;
            Err(ApiError::Unauthorized("passkey_clone_suspected"))
        }
        Verdict::Rejected(reason) => {
            tracing::info!(%reason, "passkey login refused");
            tx.commit().await?;
            Err(REJECTED)
        }
    }
}

enum Verdict {
    Accepted(PasskeyRow),
    /// A valid signature whose counter did not advance: the key may have been copied.
    /// The reported counter is unknown when the library refused it against the challenge's copy.
    CloneSuspected(PasskeyRow, Option<u32>),
    Rejected(String),
}

async fn verify_assertion(
    st: &AppState,
    tx: &mut Tx,
    tenant_id: &str,
    pending: &Pending,
    response: &PublicKeyCredential,
) -> ApiResult<Verdict> {
    if pending.user_id.is_empty() {
        return Ok(Verdict::Rejected("decoy challenge".into()));
    }
    let active: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND status = 'active'",
    )
    .bind(tenant_id)
    .bind(&pending.user_id)
    .fetch_optional(&mut **tx)
    .await?;
    if active.is_none() {
        return Ok(Verdict::Rejected("user no longer active".into()));
    }
    // The stored credential as it is now, not as it was when the challenge was issued: it may
    // have been deleted, or used (and its counter advanced) by another login since.
    let credential_id = ceremony::encode_credential_id(&response.raw_id);
    let row: Option<PasskeyRow> = sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND credential_id = $3"
    ))
    .bind(tenant_id)
    .bind(&pending.user_id)
    .bind(&credential_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Verdict::Rejected(
            "credential not registered to this user".into(),
        ));
    };
    let state: PasskeyAuthentication =
        serde_json::from_str(&pending.state).map_err(ApiError::internal)?;
    let rp = ceremony::relying_party(st, None)?;
    let result = match rp.finish_passkey_authentication(response, &state) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Ok(Verdict::CloneSuspected(row, None));
        }
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    if ceremony::encode_credential_id(result.cred_id()) != row.credential_id {
        return Ok(Verdict::Rejected("assertion for another credential".into()));
    }
    let mut passkey = row.passkey()?;
    passkey.update_credential(&result);
    let credential = serde_json::to_string(&passkey).map_err(ApiError::internal)?;
    let reported = i64::from(result.counter());
    // Counters only move forward. The check and the update are one statement, so two
    // processes finishing logins with the same counter cannot both pass. Authenticators that
    // keep no counter report 0 forever, which is allowed while the stored value is 0 too.
    let updated = sqlx::query(
        "UPDATE passkeys SET sign_count = $4, credential = $5, last_used_at = $6
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3
         AND (sign_count < $4 OR (sign_count = 0 AND $4 = 0))",
    )
    .bind(tenant_id)
    .bind(&pending.user_id)
    .bind(&row.id)
    .bind(reported)
    .bind(&credential)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(Verdict::CloneSuspected(row, Some(result.counter())));
    }
    Ok(Verdict::Accepted(row))
}

async fn record_clone_suspicion(
    tx: &mut Tx,
    client: &ClientInfo,
    tenant_id: &str,
    row: &PasskeyRow,
    reported: Option<u32>,
) -> ApiResult<()> {
    let detail = json!({
        "id": row.id,
        "userId": row.user_id,
        "storedCounter": row.sign_count,
        "reportedCounter": reported,
    });
    events::emit(
        tx,
        tenant_id,
        "passkey.clone_suspected",
        "passkey",
        &row.id,
        &detail,
    )
    .await?;
    audit::record(
        tx,
        AuditActor {
            tenant_id,
            actor_type: "user",
            actor_id: Some(&row.user_id),
            label: None,
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "passkey.clone_suspected",
        "passkey",
        Some(&row.id),
        None,
        Some(&detail),
    )
    .await
    .map_err(Into::into)
}

/// Mints the same session and answer as `POST /v1/auth/login`.
async fn login(
    st: &AppState,
    mut tx: Tx,
    client: &ClientInfo,
    headers: &HeaderMap,
    tenant_id: &str,
    user: &crate::identity::UserRow,
    passkey_id: &str,
) -> ApiResult<Response> {
    // Session rotation, as with a password login: whatever session the browser held ends.
    if let Some(old) = session::read_cookie(headers, OPERATOR_COOKIE) {
        session::revoke_by_cookie(&mut tx, old).await?;
    }
    let s = session::create(
        &mut tx,
        SessionSpec {
            tenant_id,
            subject: Subject::User,
            subject_id: &user.id,
            ttl: Duration::hours(st.settings.session_ttl_hours),
            impersonator_id: None,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditActor {
            tenant_id,
            actor_type: "user",
            actor_id: Some(&user.id),
            label: Some(&user.email),
            impersonator_id: None,
            ip: client.ip.as_deref(),
        },
        "auth.login",
        "session",
        Some(&s.id),
        None,
        Some(&json!({"method": "passkey", "passkeyId": passkey_id})),
    )
    .await?;
    let tenant = load_tenant(&mut *tx, tenant_id).await?;
    tx.commit().await?;
    Ok(crate::identity::login::with_session_cookie(
        st,
        StatusCode::OK,
        json!({"user": UserView::from(user), "tenant": tenant, "session": {"id": s.id, "expiresAt": s.expires_at}}),
        &s.cookie_value,
    ))
}
