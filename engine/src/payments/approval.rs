//! The approval state machine deposits and withdrawals share, and the only way their status
//! changes.
//!
//! The legal moves are data ([`MOVES`]): from a status, an action leads to another status,
//! some only under dual control (withdrawals at or above the tenant's threshold need two
//! distinct approvers). [`transition`] finds the move for the state the caller read, then
//! writes it as a compare-and-set: `UPDATE … SET status = <to> … WHERE tenant_id = $t AND id =
//! $id AND status = <from>`. On PostgreSQL a concurrent request that read the same state blocks
//! on the row until the winner commits, then matches no row and gets
//! [`TransitionError::LostRace`]; SQLite runs one writer at a time, so there the loser reads the
//! winner's state and gets [`TransitionError::Illegal`]. Both are 409s and the loser has written
//! nothing, because the compare-and-set is each flow's first write: ledger postings, holds and
//! their releases, balance pushes, the event and the audit entry all come after it, in the same
//! transaction, so only the winner makes them ([`Claimed::record`] writes the event and the
//! audit entry the move names).

use serde_json::Value;

use crate::audit;
use crate::auth::Actor;
use crate::db::{Param, SqlBuilder, Tx};
use crate::events;
use crate::http::error::ApiError;
use crate::util::now;

use Action::{Approve, Reject, Reverse, Settle};
use Control::{Any, Dual, Single};
use Flow::{Deposit, Withdrawal};
use Status::{Approved, AwaitingSecondApproval, Pending, Rejected, Reversed, Settled};

/// Which record the machine moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Deposit,
    Withdrawal,
}

impl Flow {
    fn table(self) -> &'static str {
        match self {
            Flow::Deposit => "deposits",
            Flow::Withdrawal => "withdrawals",
        }
    }

    /// The record's name in messages, events and the audit log.
    pub fn noun(self) -> &'static str {
        match self {
            Flow::Deposit => "deposit",
            Flow::Withdrawal => "withdrawal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    AwaitingSecondApproval,
    Approved,
    Settled,
    Rejected,
    Reversed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::AwaitingSecondApproval => "awaiting_second_approval",
            Status::Approved => "approved",
            Status::Settled => "settled",
            Status::Rejected => "rejected",
            Status::Reversed => "reversed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::AwaitingSecondApproval,
            Status::Approved,
            Status::Settled,
            Status::Rejected,
            Status::Reversed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Approve,
    Reject,
    Settle,
    Reverse,
}

impl Action {
    /// "A pending deposit cannot be {past}."
    fn past(self) -> &'static str {
        match self {
            Action::Approve => "approved",
            Action::Reject => "rejected",
            Action::Settle => "settled",
            Action::Reverse => "reversed",
        }
    }
}

/// When a move applies, by the record's need for dual control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Whatever the record needs.
    Any,
    /// Only records below the dual-control threshold.
    Single,
    /// Only records at or above it.
    Dual,
}

/// What a move records about who made it, beside the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing beyond the status (the flow stamps its own columns).
    Plain,
    /// `approved_by`, `approved_at`.
    Approval,
    /// `first_approved_by`, `first_approved_at`; the record waits for a second approver.
    FirstApproval,
    /// `approved_by`, `approved_at`, by someone who is neither the first approver nor the
    /// record's creator.
    SecondApproval,
}

/// One legal move of the machine.
#[derive(Debug, PartialEq, Eq)]
pub struct Move {
    pub flow: Flow,
    pub from: Status,
    pub action: Action,
    pub control: Control,
    pub to: Status,
    pub step: Step,
    /// The outbox event the move emits.
    pub event: &'static str,
    /// The audit log action it records.
    pub audit_action: &'static str,
}

// Builds one row of the table below (a function keeps each move on one line).
#[allow(clippy::too_many_arguments)]
const fn mv(
    flow: Flow,
    from: Status,
    action: Action,
    control: Control,
    to: Status,
    step: Step,
    event: &'static str,
    audit_action: &'static str,
) -> Move {
    Move {
        flow,
        from,
        action,
        control,
        to,
        step,
        event,
        audit_action,
    }
}

/// Every legal move. Deposits: pending → approved → settled → reversed, and pending or approved
/// → rejected. Withdrawals: pending → [awaiting_second_approval →] approved → settled, and any
/// unsettled state → rejected.
#[rustfmt::skip]
pub const MOVES: &[Move] = &[
    mv(Deposit, Pending, Approve, Any, Approved, Step::Approval, "deposit.approved", "deposit.approve"),
    mv(Deposit, Pending, Reject, Any, Rejected, Step::Plain, "deposit.rejected", "deposit.reject"),
    mv(Deposit, Approved, Reject, Any, Rejected, Step::Plain, "deposit.rejected", "deposit.reject"),
    mv(Deposit, Approved, Settle, Any, Settled, Step::Plain, "deposit.settled", "deposit.settle"),
    mv(Deposit, Settled, Reverse, Any, Reversed, Step::Plain, "deposit.reversed", "deposit.reverse"),
    mv(Withdrawal, Pending, Approve, Single, Approved, Step::Approval, "withdrawal.approved", "withdrawal.approve"),
    mv(Withdrawal, Pending, Approve, Dual, AwaitingSecondApproval, Step::FirstApproval, "withdrawal.first_approved", "withdrawal.approve"),
    mv(Withdrawal, AwaitingSecondApproval, Approve, Dual, Approved, Step::SecondApproval, "withdrawal.approved", "withdrawal.approve"),
    mv(Withdrawal, Pending, Reject, Any, Rejected, Step::Plain, "withdrawal.rejected", "withdrawal.reject"),
    mv(Withdrawal, AwaitingSecondApproval, Reject, Any, Rejected, Step::Plain, "withdrawal.rejected", "withdrawal.reject"),
    mv(Withdrawal, Approved, Reject, Any, Rejected, Step::Plain, "withdrawal.rejected", "withdrawal.reject"),
    mv(Withdrawal, Approved, Settle, Any, Settled, Step::Plain, "withdrawal.settled", "withdrawal.settle"),
];

/// The state of a record as the caller read it, inside the transaction that moves it.
pub struct Record<'a> {
    pub flow: Flow,
    pub id: &'a str,
    pub status: &'a str,
    pub needs_dual_control: bool,
    pub created_by: Option<&'a str>,
    pub first_approved_by: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// The state the record was read in does not allow the action.
    #[error("a {status} {} cannot be {}", flow.noun(), action.past())]
    Illegal {
        flow: Flow,
        status: String,
        action: Action,
    },
    /// A second approval by the first approver or the creator.
    #[error("a second, distinct approver is required")]
    SecondApproverRequired,
    /// Another request moved the record between this one's read and its write.
    #[error("another request moved the {} first; it is now {now}", flow.noun())]
    LostRace { flow: Flow, now: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Illegal {
                flow,
                status,
                action,
            } => ApiError::conflict(
                "invalid_state",
                format!("A {status} {} cannot be {}.", flow.noun(), action.past()),
            ),
            TransitionError::SecondApproverRequired => ApiError::conflict(
                "second_approver_required",
                "A second approver who is neither the first approver nor the creator must approve this withdrawal.",
            ),
            TransitionError::LostRace { flow, now } => ApiError::conflict(
                "concurrent_update",
                format!(
                    "Another request changed this {} first (it is now {now}); nothing was changed.",
                    flow.noun()
                ),
            ),
            TransitionError::Db(e) => ApiError::from(e),
        }
    }
}

/// The move `action` makes from the record's state, or why there is none. `actor` is who acts
/// (a second approval must come from someone else than the first approver and the creator).
pub fn find(
    record: &Record<'_>,
    action: Action,
    actor: Option<&str>,
) -> Result<&'static Move, TransitionError> {
    let illegal = || TransitionError::Illegal {
        flow: record.flow,
        status: record.status.to_string(),
        action,
    };
    let from = Status::parse(record.status).ok_or_else(illegal)?;
    let found = MOVES
        .iter()
        .find(|m| {
            m.flow == record.flow
                && m.from == from
                && m.action == action
                && match m.control {
                    Any => true,
                    Single => !record.needs_dual_control,
                    Dual => record.needs_dual_control,
                }
        })
        .ok_or_else(illegal)?;
    if found.step == Step::SecondApproval
        && (actor.is_none() || actor == record.first_approved_by || actor == record.created_by)
    {
        return Err(TransitionError::SecondApproverRequired);
    }
    Ok(found)
}

/// A column a move writes beside the status: `Set(column, value)` sets it, `Keep(column,
/// value)` sets it only when a value is given (`COALESCE`).
pub enum Column {
    Set(&'static str, Param),
    Keep(&'static str, Option<String>),
}

/// A move the caller's transaction made, which it still has to announce.
#[must_use = "a transition is announced with Claimed::record"]
pub struct Claimed {
    pub mv: &'static Move,
}

impl Claimed {
    /// Writes the move's event and audit entry (`before` as read, `after` as it now stands).
    pub async fn record(
        self,
        tx: &mut Tx,
        actor: &Actor,
        id: &str,
        before: &Value,
        after: &Value,
    ) -> Result<(), ApiError> {
        let noun = self.mv.flow.noun();
        events::emit(tx, &actor.tenant_id, self.mv.event, noun, id, after).await?;
        audit::record(
            tx,
            actor,
            self.mv.audit_action,
            noun,
            Some(id),
            Some(before),
            Some(after),
        )
        .await
        .map_err(Into::into)
    }
}

/// Moves the record by `action` from the state it was read in, writing `columns` with the
/// status, as one compare-and-set. The caller's transaction must not have written anything the
/// move depends on yet: when the record is no longer in the state read, nothing is written and
/// the answer is [`TransitionError::LostRace`] (the caller returns it, which rolls back).
pub async fn transition(
    tx: &mut Tx,
    actor: &Actor,
    record: &Record<'_>,
    action: Action,
    columns: Vec<Column>,
) -> Result<Claimed, TransitionError> {
    let who = actor.user_id.as_deref();
    let mv = find(record, action, who)?;
    let at = now();
    let table = mv.flow.table();
    let mut b = SqlBuilder::new(&format!("UPDATE {table} SET status = "));
    b.text(mv.to.as_str());
    b.push(", updated_at = ").text(at.as_str());
    let stamp = match mv.step {
        Step::Plain => None,
        Step::Approval | Step::SecondApproval => Some(("approved_by", "approved_at")),
        Step::FirstApproval => Some(("first_approved_by", "first_approved_at")),
    };
    if let Some((by, when)) = stamp {
        b.push(&format!(", {by} = "))
            .bind(Param::OptText(who.map(str::to_string)));
        b.push(&format!(", {when} = ")).text(at.as_str());
    }
    for c in columns {
        match c {
            Column::Set(name, value) => {
                b.push(&format!(", {name} = ")).bind(value);
            }
            Column::Keep(name, value) => {
                b.push(&format!(", {name} = COALESCE("))
                    .bind(Param::OptText(value))
                    .push(&format!(", {name})"));
            }
        }
    }
    b.push(" WHERE tenant_id = ").text(actor.tenant_id.clone());
    b.push(" AND id = ").text(record.id);
    b.push(" AND status = ").text(mv.from.as_str());
    let done = sqlx::query_with(b.sql(), b.arguments())
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() != 1 {
        let now: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT status FROM {table} WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(&actor.tenant_id)
        .bind(record.id)
        .fetch_optional(&mut **tx)
        .await?;
        return Err(TransitionError::LostRace {
            flow: mv.flow,
            now: now.map(|(s,)| s).unwrap_or_else(|| "gone".into()),
        });
    }
    Ok(Claimed { mv })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(flow: Flow, status: &'static str, dual: bool) -> Record<'static> {
        Record {
            flow,
            id: "01J",
            status,
            needs_dual_control: dual,
            created_by: Some("creator"),
            first_approved_by: Some("first"),
        }
    }

    fn to(flow: Flow, status: &'static str, dual: bool, action: Action) -> Option<Status> {
        find(&record(flow, status, dual), action, Some("someone"))
            .ok()
            .map(|m| m.to)
    }

    #[test]
    fn deposits() {
        for dual in [false, true] {
            assert_eq!(to(Deposit, "pending", dual, Approve), Some(Approved));
            assert_eq!(to(Deposit, "pending", dual, Reject), Some(Rejected));
            assert_eq!(to(Deposit, "approved", dual, Reject), Some(Rejected));
            assert_eq!(to(Deposit, "approved", dual, Settle), Some(Settled));
            assert_eq!(to(Deposit, "settled", dual, Reverse), Some(Reversed));
            for (status, action) in [
                ("pending", Settle),
                ("pending", Reverse),
                ("approved", Approve),
                ("settled", Reject),
                ("settled", Settle),
                ("rejected", Approve),
                ("rejected", Settle),
                ("reversed", Reverse),
                ("awaiting_second_approval", Approve),
                ("bogus", Approve),
            ] {
                assert_eq!(
                    to(Deposit, status, dual, action),
                    None,
                    "{status} {action:?}"
                );
            }
        }
    }

    #[test]
    fn withdrawals() {
        assert_eq!(to(Withdrawal, "pending", false, Approve), Some(Approved));
        assert_eq!(
            to(Withdrawal, "pending", true, Approve),
            Some(AwaitingSecondApproval)
        );
        assert_eq!(
            to(Withdrawal, "awaiting_second_approval", true, Approve),
            Some(Approved)
        );
        for dual in [false, true] {
            for status in ["pending", "approved"] {
                assert_eq!(to(Withdrawal, status, dual, Reject), Some(Rejected));
            }
            assert_eq!(to(Withdrawal, "approved", dual, Settle), Some(Settled));
            for (status, action) in [
                ("approved", Approve),
                ("pending", Settle),
                ("settled", Reject),
                ("settled", Reverse),
                ("rejected", Approve),
                ("rejected", Settle),
                ("rejected", Reject),
            ] {
                assert_eq!(
                    to(Withdrawal, status, dual, action),
                    None,
                    "{status} {action:?}"
                );
            }
        }
        assert_eq!(
            to(Withdrawal, "awaiting_second_approval", true, Reject),
            Some(Rejected)
        );
    }

    #[test]
    fn the_second_approver_is_someone_else() {
        let r = record(Withdrawal, "awaiting_second_approval", true);
        for who in [Some("first"), Some("creator"), None] {
            assert!(matches!(
                find(&r, Approve, who),
                Err(TransitionError::SecondApproverRequired)
            ));
        }
        assert_eq!(
            find(&r, Approve, Some("other")).map(|m| m.step).ok(),
            Some(Step::SecondApproval)
        );
    }

    #[test]
    fn every_move_is_reachable_and_named_after_its_flow() {
        for m in MOVES {
            assert!(m.event.starts_with(m.flow.noun()), "{m:?}");
            assert!(m.audit_action.starts_with(m.flow.noun()), "{m:?}");
            assert_ne!(m.from, m.to, "{m:?}");
        }
    }
}
