//! Saved segments: named, validated filters over the tenant's traders (see [`filter`]), with a
//! preview that evaluates them. Other features (campaigns, workflows) reuse
//! [`filter::SegmentFilter`] to select their audience.

pub mod filter;
mod handlers;

use crate::auth::roles::{CLIENT_WRITE, STAFF};
use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/segments", "getSegments", "segments")
            .summary("List saved customer segments for the current tenant (filter q on the name).")
            .staff(STAFF),
        handlers::list,
    );
    api.add(
        Op::post("/v1/segments", "postSegments", "segments")
            .summary("Save a segment. Filter keys: country, kycStatus, status, segments, tags, source, assignedToId (arrays, any-of) and createdAfter / createdBefore (RFC 3339); keys are ANDed.")
            .staff(CLIENT_WRITE)
            .body(r#"{"name":"EU approved","description":"Approved clients in Germany and France","filter":{"country":["DE","FR"],"kycStatus":["approved"],"status":["active"],"createdAfter":"2026-01-01T00:00:00.000Z"}}"#),
        handlers::create,
    );
    api.add(
        Op::get("/v1/segments/{id}", "getSegmentsId", "segments")
            .summary("Get a saved segment.")
            .staff(STAFF),
        handlers::get,
    );
    api.add(
        Op::patch("/v1/segments/{id}", "patchSegmentsId", "segments")
            .summary("Update a segment's name, description or filter.")
            .staff(CLIENT_WRITE)
            .body(
                r#"{"name":"EU approved VIP","filter":{"country":["DE","FR"],"segments":["vip"]}}"#,
            ),
        handlers::update,
    );
    api.add(
        Op::delete("/v1/segments/{id}", "deleteSegmentsId", "segments")
            .summary("Delete a saved segment.")
            .staff(CLIENT_WRITE),
        handlers::delete,
    );
    api.add(
        Op::get(
            "/v1/segments/{id}/preview",
            "getSegmentsIdPreview",
            "segments",
        )
        .summary("Evaluate the segment filter: total matches and the first N traders (limit, default 10, max 100).")
        .staff(STAFF),
        handlers::preview,
    );
}
