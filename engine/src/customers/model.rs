//! Customer (portal account) rows, their messages and logins, and their API views.

use serde::Serialize;
use serde_json::Value;

use crate::db::Tx;
use crate::http::error::ApiError;
use crate::util::{new_id, now};

pub const STATUSES: &[&str] = &["pending", "approved", "rejected"];

#[derive(sqlx::FromRow, Clone)]
pub struct CustomerRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub status: String,
    pub trader_id: String,
    pub assigned_to_id: Option<String>,
    pub rejection_reason: Option<String>,
    pub last_login_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub rule_decision: Option<String>,
    pub rule_decision_rule_id: Option<String>,
    pub rule_decided_at: Option<String>,
}

pub const CUSTOMER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, phone, country, status, trader_id, assigned_to_id, rejection_reason, last_login_at, created_at, updated_at, rule_decision, rule_decision_rule_id, rule_decided_at";

/// The same columns qualified with the `c` alias, for joins.
pub const CUSTOMER_COLUMNS_C: &str = "c.id, c.email, c.password_hash, c.first_name, c.last_name, c.phone, c.country, c.status, c.trader_id, c.assigned_to_id, c.rejection_reason, c.last_login_at, c.created_at, c.updated_at, c.rule_decision, c.rule_decision_rule_id, c.rule_decided_at";

/// A customer as operators and the customer see it (never the password hash).
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub status: String,
    pub trader_id: String,
    pub assigned_to_id: Option<String>,
    pub rejection_reason: Option<String>,
    pub last_login_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The latest decision of a customer rule (`approve`, `reject`, `assign`, `tag`) and the
    /// rule that made it; null when no rule has decided.
    pub rule_decision: Option<Value>,
}

impl From<CustomerRow> for CustomerView {
    fn from(r: CustomerRow) -> Self {
        CustomerView {
            id: r.id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            phone: r.phone,
            country: r.country,
            status: r.status,
            trader_id: r.trader_id,
            assigned_to_id: r.assigned_to_id,
            rejection_reason: r.rejection_reason,
            last_login_at: r.last_login_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            rule_decision: r.rule_decision.map(|d| {
                serde_json::json!({"decision": d, "ruleId": r.rule_decision_rule_id, "decidedAt": r.rule_decided_at})
            }),
        }
    }
}

pub fn view_json(v: &CustomerView) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub async fn load<'e, E>(exec: E, tenant_id: &str, id: &str) -> Result<CustomerRow, ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<CustomerRow> = sqlx::query_as(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(exec)
    .await?;
    row.ok_or(ApiError::NotFound("customer"))
}

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub customer_id: String,
    pub direction: String,
    pub body: String,
    pub author_user_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

pub const MESSAGE_COLUMNS: &str =
    "id, customer_id, direction, body, author_user_id, created_at, read_at";

/// One message of a customer's conversation with the broker: `inbound` from the customer,
/// `outbound` from a team member.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub customer_id: String,
    pub direction: String,
    pub body: String,
    pub author_user_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

impl From<MessageRow> for MessageView {
    fn from(r: MessageRow) -> Self {
        MessageView {
            id: r.id,
            customer_id: r.customer_id,
            direction: r.direction,
            body: r.body,
            author_user_id: r.author_user_id,
            created_at: r.created_at,
            read_at: r.read_at,
        }
    }
}

pub const MAX_MESSAGE_CHARS: usize = 5000;

/// Validates a message body: required, trimmed, at most 5,000 characters.
pub fn clean_body(v: &mut crate::http::validate::Validator, body: Option<&str>) -> String {
    let body = v.required("body", body).map(str::to_string);
    v.max_len("body", body.as_deref(), MAX_MESSAGE_CHARS);
    body.unwrap_or_default()
}

pub async fn insert_message(
    tx: &mut Tx,
    tenant_id: &str,
    customer_id: &str,
    direction: &str,
    body: &str,
    author_user_id: Option<&str>,
) -> Result<MessageView, ApiError> {
    let id = new_id();
    let ts = now();
    sqlx::query(
        "INSERT INTO customer_messages (tenant_id, id, customer_id, direction, body, author_user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(&id)
    .bind(customer_id)
    .bind(direction)
    .bind(body)
    .bind(author_user_id)
    .bind(&ts)
    .execute(&mut **tx)
    .await?;
    Ok(MessageView {
        id,
        customer_id: customer_id.to_string(),
        direction: direction.to_string(),
        body: body.to_string(),
        author_user_id: author_user_id.map(str::to_string),
        created_at: ts,
        read_at: None,
    })
}

#[derive(sqlx::FromRow)]
pub struct LoginRow {
    pub id: String,
    pub success: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginView {
    pub id: String,
    pub success: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
}

impl From<LoginRow> for LoginView {
    fn from(r: LoginRow) -> Self {
        LoginView {
            id: r.id,
            success: r.success != 0,
            ip: r.ip,
            user_agent: r.user_agent,
            created_at: r.created_at,
        }
    }
}

/// Records one portal login attempt of a known customer.
pub async fn record_login<'e, E>(
    exec: E,
    tenant_id: &str,
    customer_id: &str,
    success: bool,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), ApiError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO customer_logins (tenant_id, id, customer_id, success, ip, user_agent, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(new_id())
    .bind(customer_id)
    .bind(i64::from(success))
    .bind(ip)
    .bind(user_agent)
    .bind(now())
    .execute(exec)
    .await?;
    Ok(())
}
