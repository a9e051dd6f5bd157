//! Outgoing mail goes through the `mail_outbox` table, written in the same transaction as the
//! change that causes it. The job runner delivers it over SMTP when `LUMIRE_SMTP_URL` is set;
//! without SMTP each message is logged once and kept in the outbox, never lost.

use chrono::{Duration, Utc};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::db::{Db, Tx};
use crate::http::error::ApiError;
use crate::util::{fmt_time, new_id, now};

pub struct Mail<'a> {
    pub tenant_id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub template: &'a str,
}

pub async fn enqueue(tx: &mut Tx, m: Mail<'_>) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO mail_outbox (tenant_id, id, to_addr, subject, body, template, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(m.tenant_id)
    .bind(new_id())
    .bind(m.to)
    .bind(m.subject)
    .bind(m.body)
    .bind(m.template)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Pending {
    tenant_id: String,
    id: String,
    to_addr: String,
    subject: String,
    body: String,
}

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Mailer> {
        let transport = match smtp_url {
            Some(url) => Some(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build()),
            None => None,
        };
        Ok(Mailer {
            transport,
            from: from.to_string(),
        })
    }

    /// Delivers (or, without SMTP, logs) a batch of pending mail. Rows are claimed with a lease
    /// so several engine processes never send the same message twice at once.
    pub async fn run_once(&self, db: &Db) -> Result<usize, ApiError> {
        let lease = fmt_time(Utc::now() + Duration::minutes(5));
        let current = now();
        let rows: Vec<Pending> = if self.transport.is_some() {
            sqlx::query_as(
                "UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
                 WHERE status = 'pending' AND attempts < 10 AND (claimed_until IS NULL OR claimed_until < $2)
                   AND id IN (SELECT id FROM mail_outbox WHERE status = 'pending' AND attempts < 10
                              AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY created_at LIMIT 20)
                 RETURNING tenant_id, id, to_addr, subject, body",
            )
            .bind(&lease)
            .bind(&current)
            .fetch_all(db.pool())
            .await?
        } else {
            sqlx::query_as(
                "UPDATE mail_outbox SET logged_at = $1
                 WHERE status = 'pending' AND logged_at IS NULL
                 RETURNING tenant_id, id, to_addr, subject, body",
            )
            .bind(&current)
            .fetch_all(db.pool())
            .await?
        };
        let n = rows.len();
        for m in rows {
            match &self.transport {
                None => tracing::info!(
                    tenant_id = %m.tenant_id, to = %m.to_addr, subject = %m.subject,
                    "mail kept in outbox (no SMTP configured)"
                ),
                Some(t) => {
                    let result = self.build(&m).map(|msg| (t, msg));
                    let outcome = match result {
                        Ok((t, msg)) => t.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    let (status, err) = match outcome {
                        Ok(()) => ("sent", None),
                        Err(e) => {
                            tracing::warn!(mail_id = %m.id, error = %e, "mail delivery failed");
                            ("pending", Some(e))
                        }
                    };
                    sqlx::query(
                        "UPDATE mail_outbox SET status = $3, last_error = $4, sent_at = CASE WHEN $3 = 'sent' THEN $5 ELSE NULL END, claimed_until = NULL
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(&m.tenant_id)
                    .bind(&m.id)
                    .bind(status)
                    .bind(err)
                    .bind(now())
                    .execute(db.pool())
                    .await?;
                }
            }
        }
        Ok(n)
    }

    fn build(&self, m: &Pending) -> Result<Message, String> {
        let from: Mailbox = self.from.parse().map_err(|e| format!("bad sender: {e}"))?;
        let to: Mailbox = m
            .to_addr
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
        Message::builder()
            .from(from)
            .to(to)
            .subject(m.subject.clone())
            .body(m.body.clone())
            .map_err(|e| e.to_string())
    }
}
