//! Trading-platform connectors (world `platform-connector`): implement [`Connector`] and
//! register it with [`crate::export_connector!`]. The engine calls a connector for one tenant at
//! a time; [`crate::config::get`] gives the tenant's connection settings (`endpoint`, ...) and
//! [`crate::config::secret`] its credentials. Reach the platform with [`crate::http_client`].
//!
//! One engine operation (a sync run, a push) may make several calls on one instance, so a
//! connector can keep a session in a `static` between them; every new operation starts fresh.

pub use crate::connector_bindings::exports::lumire::plugin0_2_0::connector::{
    Account, Balance, BalanceOperation, Error, Position, PositionPage, Side,
};

/// A page of accounts and the cursor of the next one.
pub type AccountPage = (Vec<Account>, Option<String>);

/// What a connector implements: the `connector` interface of `lumire:plugin@0.2.0`.
pub trait Connector {
    /// Describes the connector (its name is the platform it serves: `mt5`, `ctrader`, ...).
    fn manifest() -> crate::Manifest;
    /// Checks the configured credentials and connectivity; a line about the server.
    fn test_connection() -> Result<String, Error>;
    /// Accounts, `limit` at a time, after `cursor`.
    fn list_accounts(cursor: Option<String>, limit: u32) -> Result<AccountPage, Error>;
    /// Balance, credit, equity and margin of these logins.
    fn get_balances(logins: Vec<String>) -> Result<Vec<Balance>, Error>;
    /// Open positions of these logins, a page at a time.
    fn list_open_positions(
        logins: Vec<String>,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error>;
    /// Positions of these logins closed at or after `since`, a page at a time.
    fn list_closed_positions(
        logins: Vec<String>,
        since: String,
        cursor: Option<String>,
    ) -> Result<PositionPage, Error>;
    /// Pushes a balance operation exactly once per idempotency key; the platform's deal id.
    fn push_balance_operation(op: BalanceOperation) -> Result<String, Error>;
    /// Diagnostics about the server, as JSON.
    fn describe_server() -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({}))
    }
}

/// Registers `$t` (a type implementing [`Connector`]) as the component's exports.
#[macro_export]
macro_rules! export_connector {
    ($t:ty) => {
        #[doc(hidden)]
        struct __LumireConnectorExports;
        impl $crate::connector_bindings::Guest for __LumireConnectorExports {
            fn describe() -> $crate::Manifest {
                <$t as $crate::connector::Connector>::manifest()
            }
        }
        impl $crate::connector_bindings::exports::lumire::plugin0_2_0::connector::Guest
            for __LumireConnectorExports
        {
            fn test_connection() -> Result<String, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::test_connection()
            }
            fn list_accounts(
                cursor: Option<String>,
                limit: u32,
            ) -> Result<$crate::connector::AccountPage, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::list_accounts(cursor, limit)
            }
            fn get_balances(
                logins: Vec<String>,
            ) -> Result<Vec<$crate::connector::Balance>, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::get_balances(logins)
            }
            fn list_open_positions(
                logins: Vec<String>,
                cursor: Option<String>,
            ) -> Result<$crate::connector::PositionPage, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::list_open_positions(logins, cursor)
            }
            fn list_closed_positions(
                logins: Vec<String>,
                since: String,
                cursor: Option<String>,
            ) -> Result<$crate::connector::PositionPage, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::list_closed_positions(logins, since, cursor)
            }
            fn push_balance_operation(
                op: $crate::connector::BalanceOperation,
            ) -> Result<String, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::push_balance_operation(op)
            }
            fn describe_server() -> Result<String, $crate::connector::Error> {
                <$t as $crate::connector::Connector>::describe_server().map(|v| v.to_string())
            }
        }
        $crate::connector_bindings::__export_platform_connector!(__LumireConnectorExports with_types_in $crate::connector_bindings);
    };
}
