//! Passkeys (WebAuthn): a signed-in operator enrols authenticators on their account, lists and
//! removes them, and logs in with one instead of a password. Ceremony state lives in the
//! database (`webauthn_challenges`, five minutes, single use) so any engine process can finish
//! what another started. Verification is done by the `webauthn-rs` crate.

mod ceremony;
mod handlers;
pub mod model;

use crate::http::api::{Api, Op};
use crate::identity::ANY_MEMBER;

pub fn routes(api: &mut Api) {
    api.add(
        Op::post(
            "/v1/auth/passkeys/register/start",
            "postAuthPasskeysRegisterStart",
            "webauthn",
        )
        .session_only()
        .summary("Begin enrolling a passkey on the current user: returns the options for navigator.credentials.create() and a challengeId (valid 5 minutes, single use). Session only: API keys and impersonating operators get 403.")
        .action()
        .staff(ANY_MEMBER)
        .body(r#"{"label":"MacBook Touch ID"}"#),
        handlers::register_start,
    );
    api.add(
        Op::post(
            "/v1/auth/passkeys/register/finish",
            "postAuthPasskeysRegisterFinish",
            "webauthn",
        )
        .session_only()
        .summary("Verify the browser's new credential and store the passkey. challengeId is optional (default: the user's newest pending registration); label overrides the one given at start. The challenge is spent by the first attempt, even a refused one.")
        .staff(ANY_MEMBER)
        .body(r#"{"label":"MacBook Touch ID","challengeId":"01J0TENANT0000000000000000.01J0CHALLENGE0000000000000","response":{"id":"...","rawId":"...","type":"public-key","response":{"attestationObject":"...","clientDataJSON":"..."}}}"#),
        handlers::register_finish,
    );
    api.add(
        Op::get("/v1/auth/passkeys", "getAuthPasskeys", "webauthn")
            .summary("List the current user's passkeys (id, label, createdAt, lastUsedAt), newest first.")
            .staff(ANY_MEMBER),
        handlers::list,
    );
    api.add(
        Op::delete("/v1/auth/passkeys/{id}", "deleteAuthPasskeysId", "webauthn")
            .session_only()
            .summary(
                "Remove one of the current user's passkeys (another user's or tenant's id is 404).",
            )
            .staff(ANY_MEMBER),
        handlers::delete,
    );
    api.add(
        Op::post(
            "/v1/auth/passkeys/authenticate/start",
            "postAuthPasskeysAuthenticateStart",
            "webauthn",
        )
        .summary("Begin passkey login — returns the options for navigator.credentials.get() and a challengeId. E-mails without a passkey get decoy options of the same shape.")
        .action()
        .body(r#"{"email":"owner@broker.example","tenantSlug":"acme-fx"}"#),
        handlers::authenticate_start,
    );
    api.add(
        Op::post(
            "/v1/auth/passkeys/authenticate/finish",
            "postAuthPasskeysAuthenticateFinish",
            "webauthn",
        )
        .summary("Complete passkey login — verifies the assertion and its signature counter, then mints a session cookie identical to /v1/auth/login.")
        .action()
        .body(r#"{"challengeId":"01J0TENANT0000000000000000.01J0CHALLENGE0000000000000","response":{"id":"...","rawId":"...","type":"public-key","response":{"authenticatorData":"...","clientDataJSON":"...","signature":"...","userHandle":"..."}}}"#),
        handlers::authenticate_finish,
    );
}
