//! Validating a submitted lead and building the stored (and returned) lead.

use lumire_plugin_sdk::Problem;
use serde_json::{Map, Value, json};

pub const STATUSES: &[&str] = &[
    "CLOSED",
    "DECLINED",
    "FUNDED",
    "WAITING_FOR_CALL",
    "MISSED_CALL",
    "AWAITING_LOAN_DOCUMENTS",
    "AWAITING_CREDIT_APPROVAL",
    "PROCESSING",
    "AWAITING_DISBURSEMENT",
];
pub const APPLICATION_STATUSES: &[&str] = &["IN_PROCESS", "SUBMITTED"];
pub const LOAN_REASONS: &[&str] = &[
    "hiring",
    "inventory",
    "debtConsolidation",
    "marketing",
    "wages",
    "equipmentPurchasing",
    "expansion",
    "workingCapital",
    "other",
];
pub const LICENSE_STATES: &[&str] = &["ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA"];

const TOP: &[&str] = &["customer", "company", "loan", "enforce_mandatories"];
const CUSTOMER: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "address",
    "credit_score",
    "defaults",
    "drivers_license_number",
    "drivers_license_state",
];
const COMPANY: &[&str] = &[
    "name",
    "defaults",
    "months_in_business",
    "accounting_software",
    "business_description",
    "industry",
    "average_monthly_turnover",
    "abn",
    "address",
    "website",
    "number_of_employees",
];
const ADDRESS: &[&str] = &[
    "street_number",
    "street",
    "street_type",
    "suburb",
    "postcode",
    "postal_code",
    "state",
    "country",
];
const LOAN: &[&str] = &[
    "notes",
    "requested_amount",
    "installments",
    "reason_for_loan",
];

/// Fields that are strings in the schema (numbers are accepted and kept as given).
const NUMBERS: &[&str] = &[
    "customer.credit_score",
    "company.months_in_business",
    "company.average_monthly_turnover",
    "company.number_of_employees",
    "loan.requested_amount",
    "loan.installments",
];

#[derive(Default)]
struct Errors(Vec<(String, String)>);

impl Errors {
    fn add(&mut self, field: &str, msg: &str) {
        self.0.push((field.to_string(), msg.to_string()));
    }
}

fn object<'a>(
    v: Option<&'a Value>,
    field: &str,
    known: &[&str],
    e: &mut Errors,
) -> Option<&'a Map<String, Value>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            for k in m.keys() {
                if !known.contains(&k.as_str()) {
                    e.add(&format!("{field}.{k}"), "is not a known property");
                }
            }
            Some(m)
        }
        Some(_) => {
            e.add(field, "must be an object");
            None
        }
    }
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// The validated input, kept as the caller sent it.
pub struct Input {
    customer: Map<String, Value>,
    company: Map<String, Value>,
    loan: Map<String, Value>,
}

pub fn validate(body: &Value, enforce: bool) -> Result<Input, Problem> {
    let mut e = Errors::default();
    let Some(top) = body.as_object() else {
        return Err(Problem::field("body", "must be a JSON object"));
    };
    for k in top.keys() {
        if !TOP.contains(&k.as_str()) {
            e.add(k, "is not a known property");
        }
    }
    if top
        .get("enforce_mandatories")
        .is_some_and(|v| !v.is_boolean())
    {
        e.add("enforce_mandatories", "must be true or false");
    }
    let customer = object(top.get("customer"), "customer", CUSTOMER, &mut e)
        .cloned()
        .unwrap_or_default();
    let company = object(top.get("company"), "company", COMPANY, &mut e)
        .cloned()
        .unwrap_or_default();
    let loan = object(top.get("loan"), "loan", LOAN, &mut e)
        .cloned()
        .unwrap_or_default();
    object(customer.get("address"), "customer.address", ADDRESS, &mut e);
    object(company.get("address"), "company.address", ADDRESS, &mut e);

    // Always required; the rest may be skipped with enforce_mandatories=false.
    for (obj, name, field) in [
        (&customer, "first_name", "customer.first_name"),
        (&customer, "email", "customer.email"),
    ] {
        if !present(obj.get(name)) {
            e.add(field, "is required");
        }
    }
    if enforce {
        for (obj, name, field) in [
            (&customer, "phone", "customer.phone"),
            (&company, "name", "company.name"),
            (&company, "abn", "company.abn"),
            (&loan, "requested_amount", "loan.requested_amount"),
            (&loan, "installments", "loan.installments"),
        ] {
            if !present(obj.get(name)) {
                e.add(field, "is required (or send enforce_mandatories=false)");
            }
        }
    }
    if let Some(email) = customer.get("email").and_then(Value::as_str)
        && !(email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')))
    {
        e.add("customer.email", "must be an e-mail address");
    }
    if customer
        .get("email")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        e.add("customer.email", "must be a string");
    }
    if let Some(d) = customer.get("date_of_birth").filter(|v| !v.is_null())
        && !d.as_str().is_some_and(crate::time::is_date)
    {
        e.add("customer.date_of_birth", "must be an ISO date (1994-02-14)");
    }
    if let Some(s) = customer
        .get("drivers_license_state")
        .filter(|v| !v.is_null())
        && !s.as_str().is_some_and(|s| LICENSE_STATES.contains(&s))
    {
        e.add(
            "customer.drivers_license_state",
            &format!("must be one of {}", LICENSE_STATES.join(", ")),
        );
    }
    match loan.get("reason_for_loan") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items
                .iter()
                .any(|r| !r.as_str().is_some_and(|r| LOAN_REASONS.contains(&r)))
            {
                e.add(
                    "loan.reason_for_loan",
                    &format!("values must be among {}", LOAN_REASONS.join(", ")),
                );
            }
        }
        Some(Value::String(r)) if LOAN_REASONS.contains(&r.as_str()) => {}
        Some(_) => e.add(
            "loan.reason_for_loan",
            &format!("values must be among {}", LOAN_REASONS.join(", ")),
        ),
    }
    for path in NUMBERS {
        let (obj, key) = path.split_once('.').unwrap_or_default();
        let map = match obj {
            "customer" => &customer,
            "company" => &company,
            _ => &loan,
        };
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 0.0) => {}
            Some(_) => e.add(path, "must be a non-negative number"),
        }
    }
    for (obj, key, path) in [
        (&customer, "first_name", "customer.first_name"),
        (&customer, "last_name", "customer.last_name"),
        (&company, "name", "company.name"),
        (&loan, "notes", "loan.notes"),
    ] {
        if let Some(v) = obj.get(key)
            && !v.is_null()
            && v.as_str().is_none_or(|s| s.chars().count() > 500)
        {
            e.add(path, "must be a string of at most 500 characters");
        }
    }
    if !e.0.is_empty() {
        return Err(Problem::fields(e.0));
    }
    Ok(Input {
        customer,
        company,
        loan,
    })
}

fn text(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(other) => Value::String(other.to_string()),
    }
}

/// The lead as stored and returned by `GET /v1/leads`.
pub fn build(
    id: &str,
    i: &Input,
    now: &str,
    loan_id: impl Fn() -> String,
    app_id: impl Fn() -> String,
) -> Value {
    let c = &i.customer;
    let reasons = match i.loan.get("reason_for_loan") {
        Some(Value::Array(a)) => Value::Array(a.clone()),
        Some(Value::String(s)) => json!([s]),
        _ => json!([]),
    };
    json!({
        "notes": [],
        "events": [],
        "id": id,
        "status": "WAITING_FOR_CALL",
        "stakeholder": {
            "first_name": c.get("first_name"),
            "last_name": c.get("last_name"),
            "email": c.get("email"),
            "phone": text(c.get("phone")),
            "birth_date": c.get("date_of_birth"),
            "address": c.get("address").cloned().unwrap_or_else(|| json!({})),
            "credit_score": c.get("credit_score"),
            "defaults": c.get("defaults"),
            "drivers_license_number": text(c.get("drivers_license_number")),
            "drivers_license_state": c.get("drivers_license_state"),
        },
        "company": {
            "name": i.company.get("name"),
            "abn": text(i.company.get("abn")),
            "industry": i.company.get("industry"),
            "address": i.company.get("address").cloned().unwrap_or_else(|| json!({})),
            "average_monthly_turnover": i.company.get("average_monthly_turnover"),
            "months_in_business": i.company.get("months_in_business"),
            "accounting_software": i.company.get("accounting_software"),
            "business_description": i.company.get("business_description"),
            "website": i.company.get("website"),
            "number_of_employees": i.company.get("number_of_employees"),
            "defaults": i.company.get("defaults"),
        },
        "loan": {
            "reason_for_loan": reasons,
            "requested_amount": i.loan.get("requested_amount"),
            "installments": i.loan.get("installments"),
            "notes": i.loan.get("notes"),
            "amount": 0,
        },
        "created_at": now,
        "updated_at": now,
        "loan_id": loan_id(),
        "application_id": app_id(),
        "lead_application_status": "IN_PROCESS",
    })
}
