//! The current tenant: its name, branding, feature flags and logo. The logo goes through a
//! two-step upload (`uploads`) into the object store, then a confirm makes it current.

pub mod flags;
mod handlers;
pub mod uploads;

use crate::auth::roles::{ADMINS, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/tenants/current", "getTenantsCurrent", "admin")
            .summary("The caller's tenant: name, slug, branding, feature flags, logo URL.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/tenants/current", "patchTenantsCurrent", "admin")
            .summary("Update the tenant's name, branding and feature flags. `branding` and `featureFlags` are merged one level deep; a key set to null is removed. Flags are booleans.")
            .staff(ADMINS)
            .body(r##"{"name":"Acme FX","branding":{"primaryColor":"#0B5FFF","supportEmail":"help@acme.example"},"featureFlags":{"portalDeposits":true,"copyTrading":false}}"##),
        handlers::update,
    );
    api.add(
        Op::post(
            "/v1/tenants/current/logo-upload",
            "postTenantsCurrentLogoUpload",
            "admin",
        )
        .summary("Start a logo upload (image/png, image/jpeg, image/svg+xml or image/webp, at most 2 MiB). Answers {uploadId, uploadUrl, method: PUT, expiresAt, headers}; PUT the file there within 15 minutes, then confirm.")
        .staff(ADMINS)
        .body(r#"{"contentType":"image/png","fileSize":48213}"#),
        handlers::logo_upload,
    );
    api.add(
        Op::post(
            "/v1/tenants/current/logo-confirm",
            "postTenantsCurrentLogoConfirm",
            "admin",
        )
        .summary("Make an uploaded file the tenant's logo; 409 upload_incomplete if nothing was uploaded.")
        .action()
        .staff(ADMINS)
        .body(r#"{"uploadId":"01JX0000000000000000000000"}"#),
        handlers::logo_confirm,
    );
    let logo = Op::get("/v1/tenants/current/logo", "getTenantsCurrentLogo", "admin")
        .summary("The tenant's logo image; 404 when none is set.")
        .staff(STAFF);
    api.add(
        Op {
            produces: "image/*",
            ..logo
        },
        handlers::logo,
    );
    api.add(
        Op::put("/v1/uploads/{id}", "putUploadsId", "uploads")
            .summary("Upload the bytes of a file announced by an upload operation (the URL it answered, with its `token`). The Content-Type must be the declared one; the size at most the declared fileSize.")
            .status(200),
        uploads::put,
    );
}
