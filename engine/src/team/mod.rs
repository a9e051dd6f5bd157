//! The broker's team: members, invitations, role changes, removal and owner impersonation,
//! served both under `/v1/team` and under the admin area's `/v1/users`.
//!
//! Rules every path follows: only an owner grants or removes `owner` or changes an owner's
//! membership; the last owner cannot be demoted or removed (409 `last_owner`); nobody removes
//! themselves (409 `cannot_remove_self`); `platform_operator` is never assignable (400).

mod invitations;
mod members;
pub mod model;
mod users;

use crate::auth::roles::{ADMINS, OWNER_ONLY, STAFF};
use crate::http::api::{Api, Op};

const INVITE_EXAMPLE: &str =
    r#"{"email":"dealer@broker.example","displayName":"Dana Dealer","roles":["dealer"]}"#;
const ROLES_EXAMPLE: &str = r#"{"roles":["sales","support"]}"#;

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/team", "getTeam", "team")
            .summary("List team members + pending invitations for current tenant.")
            .staff(STAFF),
        members::team,
    );
    api.add(
        Op::post("/v1/team/invite", "postTeamInvite", "team")
            .summary("Invite a team member by email. Sends invite email with a single-use link valid 7 days.")
            .staff(ADMINS)
            .body(INVITE_EXAMPLE),
        invitations::invite,
    );
    api.add(
        Op::get(
            "/v1/team/invitations/{id}",
            "getTeamInvitationsToken",
            "team",
        )
        .summary("Fetch invitation details (for accept UI). The path parameter is the mailed token; used, revoked or expired invitations are 404."),
        invitations::show,
    );
    api.add(
        Op::post(
            "/v1/team/invitations/{id}/accept",
            "postTeamInvitationsTokenAccept",
            "team",
        )
        .summary("Accept invitation (path parameter: the mailed token): creates user with password, marks invite used, starts a session.")
        .body(r#"{"password":"a long passphrase","displayName":"Dana Dealer"}"#),
        invitations::accept,
    );
    api.add(
        Op::delete(
            "/v1/team/invitations/{id}",
            "deleteTeamInvitationsId",
            "team",
        )
        .summary("Revoke a pending invitation (path parameter: the invitation id).")
        .staff(ADMINS),
        invitations::revoke,
    );
    api.add(
        Op::patch(
            "/v1/team/members/{userId}/roles",
            "patchTeamMembersUserIdRoles",
            "team",
        )
        .summary("Update roles for a team member; their API keys are capped to the new roles.")
        .staff(ADMINS)
        .body(ROLES_EXAMPLE),
        members::set_roles,
    );
    api.add(
        Op::delete(
            "/v1/team/members/{userId}",
            "deleteTeamMembersUserId",
            "team",
        )
        .summary("Remove a team member (soft delete, revoke sessions, API keys and the invitations they sent).")
        .staff(ADMINS),
        members::remove,
    );

    api.add(
        Op::get("/v1/users", "getUsers", "admin")
            .summary("List team members (filters: status active|deactivated, role, q).")
            .staff(ADMINS),
        members::list_users,
    );
    api.add(
        Op::post("/v1/users/invite", "postUsersInvite", "admin")
            .summary("Add a team member: with `password` the user is created at once (`sendInviteLink: true` mails a sign-in notice); without one an invitation link is mailed. Answers {user, invitation}.")
            .staff(ADMINS)
            .body(r#"{"email":"user@example.com","displayName":"Sam Sales","roles":["sales"],"password":"a long passphrase","sendInviteLink":true}"#),
        users::invite,
    );
    api.add(
        Op::delete("/v1/users/{id}", "deleteUsersId", "admin")
            .summary("Deactivate a team member (same rules as DELETE /v1/team/members/{userId}).")
            .staff(ADMINS),
        members::remove,
    );
    api.add(
        Op::patch("/v1/users/{id}/roles", "patchUsersIdRoles", "admin")
            .summary(
                "Replace a member's roles (same rules as PATCH /v1/team/members/{userId}/roles).",
            )
            .staff(ADMINS)
            .body(ROLES_EXAMPLE),
        members::set_roles,
    );
    api.add(
        Op::post(
            "/v1/users/{id}/impersonate",
            "postUsersIdImpersonate",
            "admin",
        )
        .summary("Owner only: start a 30-minute session as another (non-owner) member; set as the session cookie and returned in the body. Audited with both ids.")
        .action()
        .staff(OWNER_ONLY)
        .body(r#"{"reason":"reproduce the dealer's blotter issue"}"#),
        users::impersonate,
    );
}
