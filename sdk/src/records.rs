//! The engine's core records of the calling tenant (capability `core-records`): traders, their
//! trading accounts and positions. A trader created here is validated, audited as the plugin
//! and announced (`trader.created`) like one created through the API.

use crate::v2::records as raw;
pub use raw::{Error, NewTrader, Position, Trader, TradingAccount};

/// A trader of the tenant.
pub fn trader(id: &str) -> Result<Trader, Error> {
    raw::get_trader(id)
}

/// The trader with this e-mail address (case-insensitive), if any.
pub fn trader_by_email(email: &str) -> Result<Option<Trader>, Error> {
    raw::find_trader_by_email(email)
}

/// Creates a trader; `Error::Conflict` when the e-mail address is taken.
pub fn create_trader(t: &NewTrader) -> Result<Trader, Error> {
    raw::create_trader(t)
}

/// A trader's trading accounts.
pub fn accounts(trader_id: &str) -> Result<Vec<TradingAccount>, Error> {
    raw::list_accounts(trader_id)
}

/// One trading account.
pub fn account(id: &str) -> Result<TradingAccount, Error> {
    raw::get_account(id)
}

/// Open positions of an account.
pub fn open_positions(account_id: &str) -> Result<Vec<Position>, Error> {
    raw::list_positions(account_id, true, None)
}

/// Positions of an account closed at or after `since` (RFC 3339).
pub fn closed_positions(account_id: &str, since: &str) -> Result<Vec<Position>, Error> {
    raw::list_positions(account_id, false, Some(since))
}
