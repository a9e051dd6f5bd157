//! The plugin document store (`plugin_documents`): every statement is scoped to the tenant and
//! plugin of the call being served, taken from the host's call context, never from the guest.

use base64::Engine as _;
use serde_json::Value;
use sqlx::AnyConnection;

use super::bindings::storage::{Document, Error, Filter, Op, Page, Query, Write};
use super::manifest::Manifest;
use crate::db::{SqlBuilder, Tx};
use crate::util::now;

/// Largest stored document (the JSON text), in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// Most writes in one `batch`.
pub const MAX_BATCH: usize = 200;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;

/// Who the host is acting for: set by the host per call.
pub struct Scope<'a> {
    pub tenant_id: &'a str,
    pub manifest: &'a Manifest,
}

impl<'a> Scope<'a> {
    pub fn new(tenant_id: &'a str, manifest: &'a Manifest) -> Scope<'a> {
        Scope {
            tenant_id,
            manifest,
        }
    }
}

pub(super) fn db_err(e: sqlx::Error) -> Error {
    tracing::warn!(error = %e, "plugin storage failed");
    Error::Unavailable("the database failed".into())
}

fn indexes<'a>(scope: &'a Scope<'_>, collection: &str) -> Result<&'a [String], Error> {
    scope
        .manifest
        .collections
        .get(collection)
        .map(Vec::as_slice)
        .ok_or_else(|| Error::Invalid(format!("collection {collection:?} is not declared")))
}

fn check_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Invalid(
            "ids are 1-128 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

fn index_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// The SQL column for a field a plugin filters or orders on.
fn column(idx: &[String], field: &str) -> Result<String, Error> {
    match field {
        "id" => Ok("id".into()),
        "created-at" => Ok("created_at".into()),
        "updated-at" => Ok("updated_at".into()),
        f => idx
            .iter()
            .position(|x| x == f)
            .map(|i| format!("COALESCE(idx{}, '')", i + 1))
            .ok_or_else(|| Error::Invalid(format!("field {f:?} is not indexed"))),
    }
}

fn scoped(sql: &str, scope: &Scope<'_>, collection: &str) -> SqlBuilder {
    let mut b = SqlBuilder::new(sql);
    b.push(" WHERE tenant_id = ")
        .text(scope.tenant_id)
        .push(" AND plugin = ")
        .text(&scope.manifest.name)
        .push(" AND collection = ")
        .text(collection);
    b
}

fn push_filters(b: &mut SqlBuilder, idx: &[String], filters: &[Filter]) -> Result<(), Error> {
    if filters.len() > 16 {
        return Err(Error::Invalid("at most 16 filters".into()));
    }
    for f in filters {
        let col = column(idx, &f.field)?;
        b.push(" AND ");
        match f.op {
            Op::Prefix => {
                let n = f.value.chars().count() as i64;
                b.push(&format!("substr({col}, 1, "))
                    .int(n)
                    .push(") = ")
                    .text(&f.value);
            }
            op => {
                let sym = match op {
                    Op::Eq => "=",
                    Op::Ne => "<>",
                    Op::Lt => "<",
                    Op::Lte => "<=",
                    Op::Gt => ">",
                    _ => ">=",
                };
                b.push(&format!("{col} {sym} ")).text(&f.value);
            }
        }
    }
    Ok(())
}

/// A checked document: its text, with the values of its collection's indexed fields.
struct Checked<'b> {
    body: &'b str,
    idx: [Option<String>; 4],
}

fn check_document<'b>(
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
    body: &'b str,
) -> Result<Checked<'b>, Error> {
    let idx = indexes(scope, collection)?;
    check_id(id)?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::TooLarge);
    }
    Ok(Checked {
        body,
        idx: indexed_values(body, idx)?,
    })
}

/// The values of `fields` in the JSON object `body`, which is checked whole.
fn indexed_values(body: &str, fields: &[String]) -> Result<[Option<String>; 4], Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let picked = serde::Deserializer::deserialize_any(&mut de, IndexedFields(fields))
        .and_then(|picked| de.end().map(|()| picked))
        .map_err(|e| Error::Invalid(format!("body: {e}")))?;
    picked.ok_or_else(|| Error::Invalid("body must be a JSON object".into()))
}

/// A key of a document: the position of the indexed field it names, if it names one (read
/// without copying it).
struct FieldIndex<'i>(&'i [String]);

impl<'de> serde::de::DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|f| f == key))
    }
}

/// Reads a document for the values of its indexed fields: the whole text is checked to be JSON,
/// but only those fields are built into values (the rest is skipped). `None` when the document is
/// not an object.
struct IndexedFields<'i>(&'i [String]);

impl<'de> serde::de::Visitor<'de> for IndexedFields<'_> {
    type Value = Option<[Option<String>; 4]>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut vals: [Option<String>; 4] = Default::default();
        while let Some(field) = map.next_key_seed(FieldIndex(self.0))? {
            // A repeated field counts with its last value, as when the text is parsed whole.
            match field {
                Some(i) if i < vals.len() => vals[i] = index_value(Some(&map.next_value()?)),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Some(vals))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// What a conditional write expects of the document (see `transaction` in WIT 0.3.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    Absent,
    Revision(u64),
}

/// A document as written: its `created_at` and new revision.
pub struct Written {
    pub document: Document,
    pub revision: u64,
}

/// Puts a document if `expect` holds; `Ok(None)` when it does not (the document changed).
pub async fn put_expecting(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
    body: &str,
    expect: Expect,
) -> Result<Option<Written>, Error> {
    let c = check_document(scope, collection, id, body)?;
    let t = now();
    let [i1, i2, i3, i4] = c.idx;
    let sql = match expect {
        Expect::Any => {
            "INSERT INTO plugin_documents (tenant_id, plugin, collection, id, body, idx1, idx2, idx3, idx4, created_at, updated_at, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)
             ON CONFLICT (tenant_id, plugin, collection, id) DO UPDATE SET body = excluded.body,
               idx1 = excluded.idx1, idx2 = excluded.idx2, idx3 = excluded.idx3, idx4 = excluded.idx4,
               updated_at = excluded.updated_at, revision = plugin_documents.revision + 1
             RETURNING created_at, revision"
        }
        Expect::Absent => {
            "INSERT INTO plugin_documents (tenant_id, plugin, collection, id, body, idx1, idx2, idx3, idx4, created_at, updated_at, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)
             ON CONFLICT (tenant_id, plugin, collection, id) DO NOTHING
             RETURNING created_at, revision"
        }
        Expect::Revision(_) => {
            "UPDATE plugin_documents SET body = $5, idx1 = $6, idx2 = $7, idx3 = $8, idx4 = $9,
               updated_at = $10, revision = revision + 1
             WHERE tenant_id = $1 AND plugin = $2 AND collection = $3 AND id = $4 AND revision = $11
             RETURNING created_at, revision"
        }
    };
    let mut q = sqlx::query_as::<_, (String, i64)>(sql)
        .bind(scope.tenant_id)
        .bind(&scope.manifest.name)
        .bind(collection)
        .bind(id)
        .bind(c.body)
        .bind(i1)
        .bind(i2)
        .bind(i3)
        .bind(i4)
        .bind(&t);
    if let Expect::Revision(r) = expect {
        q = q.bind(i64::try_from(r).unwrap_or(i64::MAX));
    }
    let row = q.fetch_optional(&mut *conn).await.map_err(db_err)?;
    Ok(row.map(|(created_at, revision)| Written {
        document: Document {
            id: id.to_string(),
            body: body.to_string(),
            created_at,
            updated_at: t,
        },
        revision: revision.max(0) as u64,
    }))
}

/// Deletes a document if `expect` holds: `Ok(Some(existed))`, or `Ok(None)` when it does not.
pub async fn delete_expecting(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
    expect: Expect,
) -> Result<Option<bool>, Error> {
    indexes(scope, collection)?;
    match expect {
        Expect::Any => delete(conn, scope, collection, id).await.map(Some),
        Expect::Absent => {
            let present = revision_in(conn, scope, collection, id).await?.is_some();
            Ok((!present).then_some(false))
        }
        Expect::Revision(r) => {
            let mut b = scoped("DELETE FROM plugin_documents", scope, collection);
            b.push(" AND id = ")
                .text(id)
                .push(" AND revision = ")
                .int(i64::try_from(r).unwrap_or(i64::MAX));
            let done = sqlx::query_with(b.sql(), b.arguments())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            Ok((done.rows_affected() > 0).then_some(true))
        }
    }
}

async fn revision_in(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
) -> Result<Option<u64>, Error> {
    let mut b = scoped("SELECT revision FROM plugin_documents", scope, collection);
    b.push(" AND id = ").text(id);
    let r: Option<i64> = b
        .query_scalar()
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(r.map(|r| r.max(0) as u64))
}

pub async fn put(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
    body: &str,
) -> Result<Document, Error> {
    let written = put_expecting(conn, scope, collection, id, body, Expect::Any).await?;
    written
        .map(|w| w.document)
        .ok_or_else(|| Error::Unavailable("the write did not apply".into()))
}

pub async fn delete(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
) -> Result<bool, Error> {
    indexes(scope, collection)?;
    let mut b = scoped("DELETE FROM plugin_documents", scope, collection);
    b.push(" AND id = ").text(id);
    let r = sqlx::query_with(b.sql(), b.arguments())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(r.rows_affected() > 0)
}

type DocRow = (String, String, String, String, String);

pub async fn get(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
) -> Result<Option<Document>, Error> {
    Ok(get_versioned(conn, scope, collection, id)
        .await?
        .map(|(doc, _)| doc))
}

/// A document and its revision.
pub async fn get_versioned(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    id: &str,
) -> Result<Option<(Document, u64)>, Error> {
    indexes(scope, collection)?;
    let mut b = scoped(
        "SELECT id, body, created_at, updated_at, revision FROM plugin_documents",
        scope,
        collection,
    );
    b.push(" AND id = ").text(id);
    let row: Option<(String, String, String, String, i64)> = b
        .query_as()
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(row.map(|(id, body, created_at, updated_at, revision)| {
        (
            Document {
                id,
                body,
                created_at,
                updated_at,
            },
            revision.max(0) as u64,
        )
    }))
}

pub async fn count(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    collection: &str,
    filters: &[Filter],
) -> Result<u64, Error> {
    let idx = indexes(scope, collection)?;
    let mut b = scoped("SELECT COUNT(*) FROM plugin_documents", scope, collection);
    push_filters(&mut b, idx, filters)?;
    let n: i64 = b
        .query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

fn encode_cursor(value: &str, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!([value, id]).to_string())
}

fn decode_cursor(c: &str) -> Result<(String, String), Error> {
    let bad = || Error::Invalid("cursor is not valid".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    serde_json::from_slice::<(String, String)>(&raw).map_err(|_| bad())
}

pub async fn find(conn: &mut AnyConnection, scope: &Scope<'_>, q: &Query) -> Result<Page, Error> {
    let idx = indexes(scope, &q.collection)?;
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(Error::Invalid(format!("limit must be 1-{MAX_LIMIT}")));
    }
    let order = column(idx, q.order_by.as_deref().unwrap_or("id"))?;
    let mut b = scoped(
        &format!("SELECT id, body, created_at, updated_at, {order} FROM plugin_documents"),
        scope,
        &q.collection,
    );
    push_filters(&mut b, idx, &q.filters)?;
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(c) = &q.cursor {
        let (value, id) = decode_cursor(c)?;
        if order == "id" {
            b.push(&format!(" AND id {cmp} ")).text(id);
        } else {
            b.push(&format!(" AND ({order} {cmp} "))
                .text(&value)
                .push(&format!(" OR ({order} = "))
                .text(value)
                .push(&format!(" AND id {cmp} "))
                .text(id)
                .push("))");
        }
    }
    if order == "id" {
        b.push(&format!(" ORDER BY id {dir}"));
    } else {
        b.push(&format!(" ORDER BY {order} {dir}, id {dir}"));
    }
    b.limit(i64::from(q.limit) + 1).offset(i64::from(q.skip));
    let mut rows: Vec<DocRow> = b.query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
    let more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&r.4, &r.0))
    } else {
        None
    };
    Ok(Page {
        documents: rows
            .into_iter()
            .map(|(id, body, created_at, updated_at, _)| Document {
                id,
                body,
                created_at,
                updated_at,
            })
            .collect(),
        next_cursor,
    })
}

/// Applies `writes` inside the caller's transaction (a `batch`, or a ledger post whose storage
/// writes commit together with its entry).
pub async fn apply(tx: &mut Tx, scope: &Scope<'_>, writes: &[Write]) -> Result<(), Error> {
    if writes.len() > MAX_BATCH {
        return Err(Error::Invalid(format!("at most {MAX_BATCH} writes")));
    }
    for w in writes {
        match &w.body {
            Some(body) => {
                put(tx, scope, &w.collection, &w.id, body).await?;
            }
            None => {
                delete(tx, scope, &w.collection, &w.id).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::indexed_values;
    use crate::plugins::bindings::storage::Error;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn indexed_fields_are_read_and_the_rest_is_only_checked() {
        let idx = fields(&["status", "score", "isDefault", "tags"]);
        let body = r#"{"id": "l1", "meta": {"status": "nested"}, "status": "new",
            "score": 12, "isDefault": true, "tags": ["a"], "note": "x\"y"}"#;
        let got = indexed_values(body, &idx).unwrap();
        assert_eq!(
            got,
            [
                Some("new".to_string()),
                Some("12".to_string()),
                Some("true".to_string()),
                Some(r#"["a"]"#.to_string()),
            ]
        );
        // Escaped keys name their field; a repeated field counts with its last value; null and
        // absent fields have no value.
        let got = indexed_values(
            r#"{"st\u0061tus": "a", "status": "b", "score": null}"#,
            &idx,
        );
        assert_eq!(got.unwrap(), [Some("b".to_string()), None, None, None]);
    }

    #[test]
    fn a_document_must_be_one_json_object() {
        let idx = fields(&["status"]);
        for bad in ["[1, 2]", "\"text\"", "3", "null", "true"] {
            let e = indexed_values(bad, &idx).unwrap_err();
            assert!(
                matches!(&e, Error::Invalid(m) if m == "body must be a JSON object"),
                "{bad}: {e:?}"
            );
        }
        for broken in [
            r#"{"status": "a""#,
            r#"{"status": "a"} x"#,
            r#"{"a": [1,}"#,
            "",
        ] {
            let e = indexed_values(broken, &idx).unwrap_err();
            assert!(
                matches!(&e, Error::Invalid(m) if m.starts_with("body: ")),
                "{broken}: {e:?}"
            );
        }
    }
}
