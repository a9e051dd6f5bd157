//! The tenant-scoped document store (capability `storage`). Every call is scoped by the host
//! to the calling tenant and plugin; declare collections and their indexed fields in the
//! manifest ([`crate::ManifestBuilder::collection`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::v1::storage as raw;
pub use raw::{Document, Error, Filter, Op, Page, Query, Write};

/// A new unique, time-ordered id (`prefix_01J...`).
pub fn new_id(prefix: &str) -> String {
    raw::new_id(prefix)
}

/// Creates or replaces a document from any serialisable value (it must serialise to an object).
pub fn put<T: Serialize>(collection: &str, id: &str, body: &T) -> Result<Document, Error> {
    let text = serde_json::to_string(body).map_err(|e| Error::Invalid(e.to_string()))?;
    raw::put(collection, id, &text)
}

/// Reads a document's body into `T`.
pub fn get<T: DeserializeOwned>(collection: &str, id: &str) -> Result<Option<T>, Error> {
    match raw::get(collection, id)? {
        Some(d) => serde_json::from_str(&d.body)
            .map(Some)
            .map_err(|e| Error::Invalid(e.to_string())),
        None => Ok(None),
    }
}

/// Deletes a document; true when it existed.
pub fn delete(collection: &str, id: &str) -> Result<bool, Error> {
    raw::delete(collection, id)
}

/// Counts documents matching all `filters`.
pub fn count(collection: &str, filters: &[Filter]) -> Result<u64, Error> {
    raw::count(collection, filters)
}

/// Applies all writes in one transaction.
pub fn batch(writes: &[Write]) -> Result<(), Error> {
    raw::batch(writes)
}

/// A filter `field op value`.
pub fn filter(field: &str, op: Op, value: &str) -> Filter {
    Filter {
        field: field.into(),
        op,
        value: value.into(),
    }
}

/// Builds and runs a query.
pub struct QueryBuilder(Query);

/// Starts a query on `collection` (ordered by id, ascending, 50 per page).
pub fn query(collection: &str) -> QueryBuilder {
    QueryBuilder(Query {
        collection: collection.into(),
        filters: Vec::new(),
        order_by: None,
        descending: false,
        limit: 50,
        cursor: None,
        skip: 0,
    })
}

impl QueryBuilder {
    /// Adds a filter (all must hold).
    pub fn filter(mut self, field: &str, op: Op, value: &str) -> Self {
        self.0.filters.push(filter(field, op, value));
        self
    }
    /// Orders by an indexed field, `created-at`, `updated-at` or `id`.
    pub fn order_by(mut self, field: &str, descending: bool) -> Self {
        self.0.order_by = Some(field.into());
        self.0.descending = descending;
        self
    }
    /// Page size (1 to 500).
    pub fn limit(mut self, n: u32) -> Self {
        self.0.limit = n;
        self
    }
    /// Continues after a previous page.
    pub fn cursor(mut self, c: Option<String>) -> Self {
        self.0.cursor = c;
        self
    }
    /// Skips documents first (index paging).
    pub fn skip(mut self, n: u32) -> Self {
        self.0.skip = n;
        self
    }
    /// The filters so far (to reuse them in [`count`]).
    pub fn filters(&self) -> &[Filter] {
        &self.0.filters
    }
    /// Runs the query.
    pub fn run(&self) -> Result<Page, Error> {
        raw::find(&self.0)
    }
    /// Runs the query and parses the bodies into `T` (`Box<serde_json::value::RawValue>` keeps
    /// each body as stored, to answer it without parsing it).
    pub fn fetch<T: DeserializeOwned>(&self) -> Result<(Vec<T>, Option<String>), Error> {
        let page = self.run()?;
        let items = page
            .documents
            .iter()
            .map(|d| serde_json::from_str(&d.body).map_err(|e| Error::Invalid(e.to_string())))
            .collect::<Result<Vec<T>, Error>>()?;
        Ok((items, page.next_cursor))
    }
}
