//! Operator identity: register (new tenant + owner), login/logout, `me`, sessions, password
//! reset, e-mail verification and TOTP.

pub(crate) mod login;
mod model;
mod sessions;
mod tokens;
mod totp;

pub use login::{check_rate_limit, record_failure, with_session_cookie};
pub use model::{
    TENANT_COLUMNS, TenantRow, TenantView, USER_COLUMNS, UserRow, UserView, load_tenant, load_user,
};
pub use tokens::{TokenPurpose, issue_token};

use crate::auth::Role;
use crate::auth::roles::STAFF;
use crate::http::api::{Api, Op};

/// Every role of a tenant's team (identity operations are open to all of them).
pub const ANY_MEMBER: &[Role] = &[
    Role::Owner,
    Role::Admin,
    Role::Compliance,
    Role::Finance,
    Role::Dealer,
    Role::Sales,
    Role::Support,
    Role::Ib,
    Role::PlatformOperator,
];

pub fn routes(api: &mut Api) {
    let _ = STAFF;
    api.add(
        Op::post("/v1/auth/register", "postAuthRegister", "identity")
            .summary("Register a new tenant and its owner; starts a session.")
            .body(r#"{"email":"owner@broker.example","password":"a long passphrase","displayName":"Jane Owner","tenantSlug":"acme-fx","tenantName":"Acme FX"}"#),
        login::register,
    );
    api.add(
        Op::post("/v1/auth/login", "postAuthLogin", "identity")
            .summary("Log in with email + password (+ TOTP if enrolled).")
            .action()
            .body(r#"{"email":"owner@broker.example","password":"a long passphrase","tenantSlug":"acme-fx","totpCode":"123456"}"#),
        login::login,
    );
    api.add(
        Op::post("/v1/auth/logout", "postAuthLogout", "identity")
            .summary("Log out and revoke the current session.")
            .status(204),
        login::logout,
    );
    api.add(
        Op::get("/v1/auth/me", "getAuthMe", "identity")
            .summary("The current user, tenant, session and impersonation state.")
            .staff(ANY_MEMBER),
        login::me,
    );
    api.add(
        Op::get("/v1/auth/sessions", "getAuthSessions", "identity")
            .summary("List active sessions (devices) for the current user.")
            .staff(ANY_MEMBER),
        sessions::list,
    );
    api.add(
        Op::delete("/v1/auth/sessions/{id}", "deleteAuthSessionsId", "identity")
            .summary("Revoke one of the current user's sessions. Session only: an API key gets 403 session_required.")
            .session_only()
            .staff(ANY_MEMBER),
        sessions::revoke,
    );
    api.add(
        Op::post(
            "/v1/auth/sessions/revoke-all",
            "postAuthSessionsRevokeAll",
            "identity",
        )
        .summary("Revoke all sessions except the current one. Session only: an API key gets 403 session_required.")
        .session_only()
        .action()
        .staff(ANY_MEMBER),
        sessions::revoke_all,
    );
    api.add(
        Op::post(
            "/v1/auth/password/forgot",
            "postAuthPasswordForgot",
            "identity",
        )
        .summary("Request a password-reset e-mail. Always answers 200.")
        .action()
        .body(r#"{"email":"owner@broker.example","tenantSlug":"acme-fx"}"#),
        tokens::forgot,
    );
    api.add(
        Op::post(
            "/v1/auth/password/reset",
            "postAuthPasswordReset",
            "identity",
        )
        .summary("Consume a password-reset token and set a new password; revokes all sessions.")
        .action()
        .body(r#"{"token":"...","password":"a new long passphrase"}"#),
        tokens::reset,
    );
    api.add(
        Op::post("/v1/auth/email/verify", "postAuthEmailVerify", "identity")
            .summary("Consume an e-mail verification token.")
            .action()
            .body(r#"{"token":"..."}"#),
        tokens::verify_email,
    );
    api.add(
        Op::post("/v1/auth/email/resend", "postAuthEmailResend", "identity")
            .summary("Send a new e-mail verification link to the current user.")
            .action()
            .staff(ANY_MEMBER),
        tokens::resend,
    );
    api.add(
        Op::post("/v1/auth/totp/enroll", "postAuthTotpEnroll", "identity")
            .summary("Begin TOTP enrolment; returns the secret and an otpauth:// URI. Session only: an API key gets 403 session_required.")
            .session_only()
            .action()
            .staff(ANY_MEMBER),
        totp::enroll,
    );
    api.add(
        Op::post("/v1/auth/totp/verify", "postAuthTotpVerify", "identity")
            .summary("Confirm TOTP enrolment with a current code. Session only: an API key gets 403 session_required.")
            .session_only()
            .action()
            .staff(ANY_MEMBER)
            .body(r#"{"code":"123456"}"#),
        totp::verify,
    );
}
