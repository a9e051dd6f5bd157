//! The KYC state machine used by the bulk decisions:
//! `not_started -> pending -> approved | rejected`, and `rejected -> pending` (resubmission).
//! A decision (approve or reject) is only taken on a `pending` review.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn target(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }

    pub fn event(self) -> &'static str {
        match self {
            Decision::Approve => "trader.kyc_approved",
            Decision::Reject => "trader.kyc_rejected",
        }
    }

    pub fn audit_action(self) -> &'static str {
        match self {
            Decision::Approve => "trader.kyc_approve",
            Decision::Reject => "trader.kyc_reject",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `pending` moves to the decision's status.
    Change,
    /// Already in the decision's status: nothing to do, so retrying a bulk call is harmless.
    Unchanged,
    /// Any other status: the whole bulk call is refused.
    Illegal,
}

pub fn outcome(current: &str, decision: Decision) -> Outcome {
    if current == decision.target() {
        Outcome::Unchanged
    } else if current == "pending" {
        Outcome::Change
    } else {
        Outcome::Illegal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_only_from_pending() {
        use Decision::*;
        assert_eq!(outcome("pending", Approve), Outcome::Change);
        assert_eq!(outcome("pending", Reject), Outcome::Change);
        assert_eq!(outcome("approved", Approve), Outcome::Unchanged);
        assert_eq!(outcome("rejected", Reject), Outcome::Unchanged);
        assert_eq!(outcome("rejected", Approve), Outcome::Illegal);
        assert_eq!(outcome("approved", Reject), Outcome::Illegal);
        assert_eq!(outcome("not_started", Approve), Outcome::Illegal);
        assert_eq!(outcome("not_started", Reject), Outcome::Illegal);
    }
}
