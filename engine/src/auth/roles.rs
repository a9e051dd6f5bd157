//! Roles and the access rule attached to every operation when it is registered
//! (see `http::api`). Role groups used by several features live here, once.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Compliance,
    Finance,
    Dealer,
    Sales,
    Support,
    Ib,
    /// Operates the whole installation, above tenants (`/v1/platform/*`).
    PlatformOperator,
}

impl Role {
    pub const ALL: [Role; 9] = [
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

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Compliance => "compliance",
            Role::Finance => "finance",
            Role::Dealer => "dealer",
            Role::Sales => "sales",
            Role::Support => "support",
            Role::Ib => "ib",
            Role::PlatformOperator => "platform_operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles a tenant may hand out to its team (platform operators are made by the installation).
    pub fn assignable(self) -> bool {
        !matches!(self, Role::PlatformOperator)
    }
}

pub fn parse_roles(json: &str) -> Vec<Role> {
    serde_json::from_str::<Vec<String>>(json)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Role::parse(s))
        .collect()
}

pub fn roles_json(roles: &[Role]) -> String {
    serde_json::to_string(&roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    /// No credential needed.
    Public,
    /// A team member or API key holding one of these roles.
    Staff(&'static [Role]),
    /// A logged-in portal customer.
    Customer,
}

use Role::*;

/// Everyone on the broker's team.
pub const STAFF: &[Role] = &[Owner, Admin, Compliance, Finance, Dealer, Sales, Support];
pub const OWNER_ONLY: &[Role] = &[Owner];
pub const ADMINS: &[Role] = &[Owner, Admin];
/// Creating and editing client records.
pub const CLIENT_WRITE: &[Role] = &[Owner, Admin, Sales, Support, Compliance];
/// KYC decisions.
pub const KYC: &[Role] = &[Owner, Admin, Compliance];
/// Trading accounts.
pub const ACCOUNT_WRITE: &[Role] = &[Owner, Admin, Dealer, Finance];
/// Dealing-desk configuration: symbols, trading groups.
pub const DEALING: &[Role] = &[Owner, Admin, Dealer];
/// Money records.
pub const MONEY_WRITE: &[Role] = &[Owner, Admin, Finance];
/// Audit trail.
pub const AUDITORS: &[Role] = &[Owner, Admin, Compliance];
