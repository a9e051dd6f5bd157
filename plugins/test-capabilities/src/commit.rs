//! `POST /v1/captest/commit`: runs the steps of the request body as one `transaction.commit`
//! (WIT 0.3.0), so the tests can prove all-or-nothing and the expectations over HTTP.
//!
//! Body: `{"steps": [...]}`, each step one of
//! `{"put": {"collection", "id", "body", "expect"}}`, `{"delete": {"collection", "id", "expect"}}`,
//! `{"trader": {"email"}}` (under a fresh id from `new-trader-id`, or `"id"` to pass one),
//! `{"transfer": {"traderId", "amount", "key"}}` (trader wallet to the plugin's `pool`);
//! `expect` is `"any"`, `"absent"` or a revision number; `?then=fail` (422) or `?then=trap`
//! makes the call fail after a successful commit; `?fallback=ID` follows a stale commit with one
//! that puts `docs/ID` and answers 200; `?before=ID` commits a put of `docs/ID` first. `GET /v1/captest/doc?collection=&id=`
//! answers the document's body and revision.

use lumire_plugin_sdk::ledger::{self, Account};
use lumire_plugin_sdk::records::NewTrader;
use lumire_plugin_sdk::transaction::{self, Error, Expect, Outcome, Transaction};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde_json::{Value, json};

fn expect(v: &Value) -> Result<Expect, Problem> {
    match v {
        Value::Null => Ok(Expect::Any),
        Value::String(s) if s == "any" => Ok(Expect::Any),
        Value::String(s) if s == "absent" => Ok(Expect::Absent),
        Value::Number(n) => n
            .as_u64()
            .map(Expect::Revision)
            .ok_or_else(|| Problem::field("expect", "is not a revision")),
        _ => Err(Problem::field("expect", "is any, absent or a revision")),
    }
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, Problem> {
    v[field]
        .as_str()
        .ok_or_else(|| Problem::field(field, "is required"))
}

fn add(tx: Transaction, step: &Value) -> Result<Transaction, Problem> {
    if let Some(p) = step.get("put") {
        return Ok(tx.put(
            text(p, "collection")?,
            text(p, "id")?,
            &p["body"],
            expect(&p["expect"])?,
        ));
    }
    if let Some(d) = step.get("delete") {
        return Ok(tx.delete(
            text(d, "collection")?,
            text(d, "id")?,
            expect(&d["expect"])?,
        ));
    }
    if let Some(t) = step.get("trader") {
        let id = match t["id"].as_str() {
            Some(id) => id.to_string(),
            None => transaction::new_trader_id(),
        };
        let new = NewTrader {
            email: text(t, "email")?.into(),
            first_name: None,
            last_name: None,
            phone: None,
            country: None,
            source: Some("captest".into()),
        };
        return Ok(tx.create_trader(&id, new));
    }
    if let Some(t) = step.get("transfer") {
        let amount = text(t, "amount")?;
        let negated = match amount.strip_prefix('-') {
            Some(rest) => rest.to_string(),
            None => format!("-{amount}"),
        };
        let entry = ledger::Entry::new("transfer", "test transfer", text(t, "key")?)
            .line(
                Account::TraderWallet(text(t, "traderId")?.into()),
                "USD",
                &negated,
            )
            .line(Account::Plugin("pool".into()), "USD", amount);
        return Ok(tx.post(entry));
    }
    Err(Problem::field(
        "steps",
        "each step is put, delete, trader or transfer",
    ))
}

fn outcome(o: &Outcome) -> Value {
    match o {
        Outcome::Written(r) => json!({"written": r}),
        Outcome::Deleted(d) => json!({"deleted": d}),
        Outcome::TraderCreated(t) => json!({"trader": t.id}),
        Outcome::Posted(id) => json!({"posted": id}),
    }
}

pub fn commit(req: &Request) -> Result<Response, Problem> {
    let body: Value = req.json()?;
    let steps = body["steps"]
        .as_array()
        .ok_or_else(|| Problem::field("steps", "is required"))?;
    let mut tx = Transaction::new();
    for s in steps {
        tx = add(tx, s)?;
    }
    // `?before=ID`: the call first commits a put of `docs/ID`, so the body's commit is not the
    // call's first write.
    if let Some(id) = req.query("before") {
        Transaction::new()
            .put("docs", id, &json!({"before": true}), Expect::Any)
            .commit()
            .map_err(|e| Problem::new(503, "before_failed", &format!("{e:?}")))?;
    }
    // Each failure kind answers its own code with the failing step, for the tests to check.
    let (kind, f) = match tx.commit() {
        Ok(outcomes) => {
            // `?then=fail` or `?then=trap`: the call fails after its commit succeeded, for the
            // tests to prove that the engine rolls back everything the call wrote.
            match req.query("then") {
                Some("fail") => {
                    return Err(Problem::new(422, "failed_after_commit", "told to fail"));
                }
                Some("trap") => panic!("told to trap after the commit"),
                _ => {}
            }
            let all: Vec<Value> = outcomes.iter().map(outcome).collect();
            return Ok(Response::json(200, &json!({"outcomes": all})));
        }
        Err(Error::Denied(f)) => ("denied", f),
        Err(Error::Invalid(f)) => ("invalid", f),
        // `?fallback=ID`: a stale commit is followed, in the same call, by a commit that puts
        // `docs/ID`, and the call answers 200: what the failed commit did must not come back.
        Err(Error::Stale(_)) if req.query("fallback").is_some() => {
            let id = req.query("fallback").unwrap_or_default();
            let outcomes = Transaction::new()
                .put("docs", id, &json!({"fallback": true}), Expect::Any)
                .commit()
                .map_err(|e| Problem::new(503, "fallback_failed", &format!("{e:?}")))?;
            let all: Vec<Value> = outcomes.iter().map(outcome).collect();
            return Ok(Response::json(200, &json!({"fallback": all})));
        }
        Err(Error::Stale(f)) => ("stale", f),
        Err(Error::Conflict(f)) => ("conflict", f),
        Err(Error::InsufficientFunds(f)) => ("insufficient_funds", f),
        Err(Error::Unavailable(m)) => return Err(Problem::new(503, "unavailable", &m)),
    };
    let mut p = Problem::conflict(kind, &f.message);
    p.errors = vec![("step".into(), f.step.to_string())];
    Err(p)
}

pub fn document(req: &Request) -> Result<Response, Problem> {
    let collection = req.query("collection").unwrap_or_default();
    let id = req.query("id").unwrap_or_default();
    match transaction::get::<Value>(collection, id)? {
        Some((body, revision)) => Ok(Response::json(
            200,
            &json!({"body": body, "revision": revision}),
        )),
        None => Err(Problem::not_found("document")),
    }
}
