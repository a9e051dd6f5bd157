//! The default object store: files under a local directory.

use std::path::PathBuf;

use super::{BoxFuture, ObjectStore, StoreError, valid_key};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if valid_key(key) {
            Ok(self.root.join(key))
        } else {
            Err(StoreError::BadKey)
        }
    }
}

impl ObjectStore for LocalStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            // Write then rename, so a reader never sees half an object.
            let tmp = path.with_extension("partial");
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &path).await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::read(&path).await {
                Ok(b) => Ok(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let dir = self.path(prefix)?;
            let mut count = 0u64;
            let mut pending = vec![dir.clone()];
            while let Some(d) = pending.pop() {
                let mut entries = match tokio::fs::read_dir(&d).await {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                while let Some(entry) = entries.next_entry().await? {
                    if entry.file_type().await?.is_dir() {
                        pending.push(entry.path());
                    } else {
                        count += 1;
                    }
                }
            }
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(count),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e.into()),
            }
        })
    }
}
