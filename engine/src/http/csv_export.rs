//! Streamed CSV exports: rows are fetched in keyset-paginated batches and written as they come,
//! so an export of 10,000 rows never sits whole in memory.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;

pub const MAX_EXPORT_ROWS: usize = 10_000;
const BATCH: i64 = 500;

/// One exported row: its id (the keyset cursor) and its cells.
pub type CsvRow = (String, Vec<String>);

struct State<F> {
    fetch: F,
    after: Option<String>,
    emitted: usize,
    header: Option<Vec<&'static str>>,
    done: bool,
}

pub fn csv_response<F, Fut>(filename: &str, header: Vec<&'static str>, fetch: F) -> Response
where
    F: FnMut(Option<String>, i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<CsvRow>, ApiError>> + Send + 'static,
{
    let state = State {
        fetch,
        after: None,
        emitted: 0,
        header: Some(header),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        if let Some(h) = st.header.take() {
            let _ = w.write_record(&h);
        }
        let want = BATCH.min((MAX_EXPORT_ROWS - st.emitted) as i64);
        let rows = if want > 0 {
            match (st.fetch)(st.after.clone(), want).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "csv export failed mid-stream");
                    st.done = true;
                    return Some((Err(std::io::Error::other("export failed")), st));
                }
            }
        } else {
            Vec::new()
        };
        if (rows.len() as i64) < want || want == 0 {
            st.done = true;
        }
        st.emitted += rows.len();
        if st.emitted >= MAX_EXPORT_ROWS {
            st.done = true;
        }
        st.after = rows.last().map(|r| r.0.clone());
        for (_, cells) in rows {
            let _ = w.write_record(cells.iter().map(|c| sanitize_cell(c)));
        }
        let bytes = w.into_inner().unwrap_or_default();
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(bytes)), st))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Cells starting with a formula character are prefixed with `'` so spreadsheets do not
/// execute them (CSV injection).
fn sanitize_cell(c: &str) -> String {
    if c.starts_with(['=', '+', '-', '@', '\t', '\r']) && c.parse::<f64>().is_err() {
        format!("'{c}")
    } else {
        c.to_string()
    }
}
