//! An S3-compatible object store, through the Apache Arrow `object_store` crate (SigV4 signing,
//! retries, path- or virtual-host-style addressing).

use futures_util::TryStreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore as _, PutPayload};

use super::{BoxFuture, ObjectStore, StoreError, valid_key};

/// Where and how to reach the bucket; credentials may also come from the standard AWS
/// environment (instance roles) when left empty.
#[derive(Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// Custom endpoint for S3-compatible services (`https://minio.internal:9000`); empty for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

pub struct S3Store {
    inner: AmazonS3,
}

impl S3Store {
    pub fn new(s: &S3Settings) -> Result<S3Store, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region);
        if let Some(e) = &s.endpoint {
            // Self-hosted stores usually live on a private network over plain HTTP and use
            // path-style addressing.
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let inner = b.build().map_err(|e| StoreError::Remote(e.to_string()))?;
        Ok(S3Store { inner })
    }
}

fn remote(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        other => StoreError::Remote(other.to_string()),
    }
}

impl ObjectStore for S3Store {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if !valid_key(key) {
                return Err(StoreError::BadKey);
            }
            self.inner
                .put(&Path::from(key), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(remote)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            if !valid_key(key) {
                return Err(StoreError::BadKey);
            }
            let got = self.inner.get(&Path::from(key)).await.map_err(remote)?;
            let bytes = got.bytes().await.map_err(remote)?;
            Ok(bytes.to_vec())
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            if !valid_key(prefix) {
                return Err(StoreError::BadKey);
            }
            let prefix = Path::from(prefix);
            let listed: Vec<_> = self
                .inner
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(remote)?;
            let mut count = 0u64;
            for meta in listed {
                self.inner.delete(&meta.location).await.map_err(remote)?;
                count += 1;
            }
            Ok(count)
        })
    }
}
