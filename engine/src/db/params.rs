//! A small builder for dynamic SQL (list filters) that numbers `$n` placeholders itself, so the
//! same statement runs on SQLite and PostgreSQL.

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments};

#[derive(Clone, Debug)]
pub enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

#[derive(Default)]
pub struct SqlBuilder {
    sql: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        SqlBuilder {
            sql: sql.to_string(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `p`.
    pub fn bind(&mut self, p: Param) -> &mut Self {
        self.params.push(p);
        self.sql.push('$');
        self.sql.push_str(&self.params.len().to_string());
        self
    }

    pub fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.bind(Param::Text(v.into()))
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.bind(Param::Int(v))
    }

    /// Appends ` LIMIT n` with `n` written into the statement, not bound. PostgreSQL can then
    /// keep one generic plan for the statement: with a bound limit it cannot cost the plan
    /// without the value, so it plans every execution again (a custom plan), which made a page
    /// query take a third to a half longer (docs/benchmarks.md, "Plans kept").
    pub fn limit(&mut self, n: i64) -> &mut Self {
        self.sql.push_str(" LIMIT ");
        self.sql.push_str(&n.to_string());
        self
    }

    /// Appends ` OFFSET n`, written into the statement like [`SqlBuilder::limit`].
    pub fn offset(&mut self, n: i64) -> &mut Self {
        self.sql.push_str(" OFFSET ");
        self.sql.push_str(&n.to_string());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn arguments<'q>(&self) -> AnyArguments<'q> {
        let mut args = AnyArguments::default();
        for p in &self.params {
            // Encoding String/i64 into AnyArguments cannot fail.
            let _ = match p {
                Param::Text(s) => args.add(s.clone()),
                Param::OptText(s) => args.add(s.clone()),
                Param::Int(i) => args.add(*i),
            };
        }
        args
    }

    pub fn query_as<'a, T>(&'a self) -> sqlx::query::QueryAs<'a, Any, T, AnyArguments<'a>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(&self.sql, self.arguments())
    }

    pub fn query_scalar<'a, T>(&'a self) -> sqlx::query::QueryScalar<'a, Any, T, AnyArguments<'a>>
    where
        (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_scalar_with(&self.sql, self.arguments())
    }
}
