//! The `sales` tag: leads, pipelines with stages, activities, and converting a lead into a
//! trader. JSON in camelCase, lists `{"data": [...], "next_cursor": ...}`, problem+json errors.

pub mod activities;
pub mod convert;
pub mod input;
pub mod leads;
pub mod pipelines;

use lumire_plugin_sdk::storage::{self, QueryBuilder};
use lumire_plugin_sdk::{Problem, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Sales leads (the partner API's leads are here too, under the same id).
pub const LEADS: &str = "sales_leads";
pub const PIPELINES: &str = "pipelines";
/// One document per stage (id = stage id), so a stage id resolves to its pipeline in one read.
pub const STAGES: &str = "pipeline_stages";
pub const ACTIVITIES: &str = "activities";

/// `limit` (default 50, 1-500) and `cursor` of a list request.
pub struct ListParams {
    pub limit: u32,
    pub cursor: Option<String>,
}

pub fn list_params(req: &Request) -> Result<ListParams, Problem> {
    let limit = match req.query("limit") {
        None | Some("") => 50,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Problem::field("limit", "must be an integer from 1 to 500"))?,
    };
    let cursor = req
        .query("cursor")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(ListParams { limit, cursor })
}

/// Runs a list query and answers the page. A cursor the store cannot read is a 400 naming it.
pub fn page<T: DeserializeOwned + Serialize>(
    q: QueryBuilder,
    p: ListParams,
) -> Result<Response, Problem> {
    let had_cursor = p.cursor.is_some();
    let q = q.limit(p.limit).cursor(p.cursor);
    let (data, next) = match q.fetch::<T>() {
        Ok(page) => page,
        Err(storage::Error::Invalid(msg)) if had_cursor && msg.contains("cursor") => {
            return Err(Problem::field("cursor", "is not a cursor of this list"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Response::json(
        200,
        &Page {
            data: &data,
            next_cursor: next,
        },
    ))
}

/// A page in the engine's list shape, written straight from the records (no JSON tree built
/// in between).
#[derive(Serialize)]
struct Page<'a, T> {
    data: &'a [T],
    next_cursor: Option<String>,
}

/// A query parameter filter, when present and not empty.
pub fn filter_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query(name).filter(|v| !v.is_empty())
}

/// A path parameter (the engine always passes the route's parameters).
pub fn path_id<'a>(req: &'a Request, name: &str) -> &'a str {
    req.param(name).unwrap_or_default()
}

/// `local@domain.tld`, at most 254 characters, no spaces.
pub fn valid_email(s: &str) -> bool {
    s.len() <= 254
        && !s.contains(char::is_whitespace)
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
}

/// ISO 3166-1 alpha-2 codes, two letters each.
const COUNTRIES: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGL\
GMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLR\
LSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPK\
PLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTR\
TTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// The upper-cased code when `s` is an ISO 3166-1 alpha-2 country code.
pub fn country(s: &str) -> Option<String> {
    let up = s.trim().to_ascii_uppercase();
    (up.len() == 2
        && up.bytes().all(|b| b.is_ascii_uppercase())
        && COUNTRIES.as_bytes().chunks(2).any(|c| c == up.as_bytes()))
    .then_some(up)
}

/// Emits an event; a failure is logged, not answered (the change itself is stored).
pub fn emit(name: &str, resource_type: &str, id: &str, payload: &serde_json::Value) {
    if let Err(e) = lumire_plugin_sdk::events::emit(name, resource_type, id, payload) {
        lumire_plugin_sdk::log::warn(&format!("{name} not emitted for {id}: {e}"));
    }
}

/// A storage write putting `body` as `collection/id`.
pub fn put_write<T: Serialize>(
    collection: &str,
    id: &str,
    body: &T,
) -> Result<storage::Write, Problem> {
    let body = serde_json::to_string(body)
        .map_err(|e| Problem::internal(&format!("serialising {collection}/{id}: {e}")))?;
    Ok(storage::Write {
        collection: collection.into(),
        id: id.into(),
        body: Some(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_and_emails() {
        assert_eq!(country("de").as_deref(), Some("DE"));
        assert_eq!(country("AU").as_deref(), Some("AU"));
        assert_eq!(country("ZW").as_deref(), Some("ZW"));
        assert!(country("XX").is_none());
        assert!(country("D").is_none());
        assert!(country("DEU").is_none());
        assert!(COUNTRIES.len() == 249 * 2);
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("a b@c.de"));
        assert!(!valid_email("@c.de"));
    }
}
