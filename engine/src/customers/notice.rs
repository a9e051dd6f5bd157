//! What a customer is told about a review decision, in the client portal and by e-mail. The
//! same words go out whether a team member decided or a customer rule did.

use serde_json::json;

use super::model::CustomerRow;
use crate::db::Tx;
use crate::http::error::ApiResult;
use crate::mail::{self, Mail};
use crate::portal::notifications::notify;

/// A review decision on a customer.
#[derive(Clone, Copy)]
pub enum Decision<'a> {
    Approved,
    /// The reason is told to the customer when there is one.
    Rejected {
        reason: Option<&'a str>,
    },
}

impl Decision<'_> {
    /// The event, notification kind and mail template of the decision.
    pub fn event(self) -> &'static str {
        match self {
            Decision::Approved => "customer.approved",
            Decision::Rejected { .. } => "customer.rejected",
        }
    }

    fn notice(self) -> (&'static str, String) {
        match self {
            Decision::Approved => (
                "Your account has been approved",
                "Your client portal account has been approved. You can now fund your account and trade."
                    .into(),
            ),
            Decision::Rejected { reason } => (
                "Your application was not approved",
                match reason {
                    Some(r) => format!("Your client portal application was not approved. Reason: {r}"),
                    None => "Your client portal application was not approved.".into(),
                },
            ),
        }
    }
}

pub(super) async fn tenant_name(tx: &mut Tx, tenant_id: &str) -> ApiResult<String> {
    Ok(crate::identity::load_tenant(&mut **tx, tenant_id)
        .await?
        .name)
}

/// Writes the customer's portal notification and queues the e-mail, in the caller's
/// transaction (the mail leaves only if the decision commits).
pub async fn tell_decision(
    tx: &mut Tx,
    tenant_id: &str,
    customer: &CustomerRow,
    decision: Decision<'_>,
) -> ApiResult<()> {
    let event = decision.event();
    let (title, body) = decision.notice();
    notify(
        tx,
        tenant_id,
        &customer.trader_id,
        event,
        title,
        &body,
        &json!({"customerId": customer.id}),
    )
    .await?;
    let broker = tenant_name(tx, tenant_id).await?;
    mail::enqueue(
        tx,
        Mail {
            tenant_id,
            to: &customer.email,
            subject: &format!("{broker}: {title}"),
            body: &format!("{body}\n"),
            template: event,
        },
    )
    .await
}
