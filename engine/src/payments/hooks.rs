//! Extension points of the deposit flow: what other modules do inside a deposit's own
//! transaction when it settles or is reversed. Payments calls no feature by name; a feature
//! registers a hook at start-up (the application assembles them, `app::App::build`).
//!
//! | point | runs | may |
//! | --- | --- | --- |
//! | [`Moment::Settled`] | inside the settlement's transaction, after its ledger entry and before its event and audit entry | write in the transaction (post to the ledger, record, emit events); an error rolls the whole settlement back |
//! | [`Moment::Reversed`] | inside the reversal's transaction, after the reversing entry | the same |
//!
//! Hooks run in registration order. Registered today: bonuses (issue what a settled deposit
//! earns; claw back what a reversed one paid).

use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use crate::auth::Actor;
use crate::db::Tx;
use crate::http::error::ApiResult;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Settled,
    Reversed,
}

/// What a hook returns: a future borrowing the transaction, the actor and the deposit id.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = ApiResult<()>> + Send + 'a>>;

/// A hook: the deposit's transaction, who moved it, and the deposit's id.
pub type Hook = for<'a> fn(&'a mut Tx, &'a Actor, &'a str) -> HookFuture<'a>;

static HOOKS: RwLock<Vec<(Moment, &'static str, Hook)>> = RwLock::new(Vec::new());

/// Registers `hook` under `name` for `moment`; registering the same name again does nothing
/// (several engines in one process, as in the tests, assemble the same hooks).
pub fn register(moment: Moment, name: &'static str, hook: Hook) {
    let mut hooks = HOOKS.write().unwrap_or_else(|p| p.into_inner());
    if !hooks.iter().any(|(m, n, _)| *m == moment && *n == name) {
        hooks.push((moment, name, hook));
    }
}

/// The registered hooks' names for `moment`, in order.
pub fn registered(moment: Moment) -> Vec<&'static str> {
    HOOKS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(m, _, _)| *m == moment)
        .map(|(_, n, _)| *n)
        .collect()
}

/// Runs the hooks of `moment` in the deposit's transaction.
pub(super) async fn run(moment: Moment, tx: &mut Tx, actor: &Actor, id: &str) -> ApiResult<()> {
    let hooks: Vec<Hook> = HOOKS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(m, _, _)| *m == moment)
        .map(|(_, _, h)| *h)
        .collect();
    for hook in hooks {
        hook(tx, actor, id).await?;
    }
    Ok(())
}
