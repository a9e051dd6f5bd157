//! Object storage behind one trait. The default keeps objects in a local directory
//! (`$LUMIRE_DATA_DIR/objects`); with `LUMIRE_S3_BUCKET` set they go to an S3-compatible store
//! (AWS S3, MinIO, Ceph, R2, ...).

mod local;
mod s3;

pub use local::LocalStore;
pub use s3::{S3Settings, S3Store};

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Keys are `tenant/purpose/id` made of safe characters only, so no key escapes its root or
/// its tenant's prefix on any backend.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object key")]
    BadKey,
    #[error("object not found")]
    NotFound,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("object store: {0}")]
    Remote(String),
}

pub trait ObjectStore: Send + Sync {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>>;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;
    /// Deletes every object under `prefix` (a valid key: whole path segments, no trailing
    /// slash); the number deleted.
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// The object store the settings name: S3-compatible with `LUMIRE_S3_BUCKET`, else the local
/// directory `$LUMIRE_DATA_DIR/objects`.
pub fn from_settings(
    settings: &crate::config::Settings,
) -> Result<std::sync::Arc<dyn ObjectStore>, StoreError> {
    Ok(match &settings.s3_bucket {
        Some(bucket) => std::sync::Arc::new(S3Store::new(&S3Settings {
            bucket: bucket.clone(),
            endpoint: settings.s3_endpoint.clone(),
            region: settings.s3_region.clone(),
            access_key_id: settings.s3_access_key_id.clone(),
            secret_access_key: settings.s3_secret_access_key.clone(),
        })?),
        None => std::sync::Arc::new(LocalStore::new(settings.data_dir.join("objects"))),
    })
}
