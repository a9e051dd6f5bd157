//! `files`: the engine's object storage, under `<tenant>/plugins/<plugin>/` (capability `storage`).

use sha2::Digest as _;

use super::super::bindings::files::{Error, Host, StoredFile};
use super::super::host::HostState;
use crate::storage::valid_key;

/// Largest file a plugin may store.
pub const MAX_FILE_BYTES: usize = 10 << 20;

/// A safe object-key segment from a file name: `[A-Za-z0-9._-]`, at most 100 characters.
fn safe_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

impl HostState {
    fn files_prefix(&self) -> Result<String, Error> {
        if !self.call.manifest.capabilities.storage {
            return Err(Error::Denied);
        }
        let tenant = self.call.tenant_id.as_deref().ok_or(Error::Denied)?;
        Ok(format!("{tenant}/plugins/{}/", self.call.manifest.name))
    }
}

impl Host for HostState {
    async fn put(
        &mut self,
        name: String,
        content_type: String,
        content: Vec<u8>,
    ) -> Result<StoredFile, Error> {
        let prefix = self.files_prefix()?;
        let store = self.services().ok_or(Error::Denied)?.store.clone();
        if content.len() > MAX_FILE_BYTES {
            return Err(Error::TooLarge);
        }
        let name = safe_name(&name)
            .ok_or_else(|| Error::Invalid("the file name has no usable characters".into()))?;
        if content_type.len() > 255 || content_type.contains(['\r', '\n']) {
            return Err(Error::Invalid("bad content type".into()));
        }
        let key = format!(
            "{prefix}{}-{name}",
            crate::util::new_id().to_ascii_lowercase()
        );
        if !valid_key(&key) {
            return Err(Error::Invalid("the file name cannot be stored".into()));
        }
        let size = content.len() as u64;
        let sha256 = hex::encode(sha2::Sha256::digest(&content));
        store
            .put(&key, content)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(StoredFile {
            key: key.trim_start_matches(&prefix).to_string(),
            size,
            sha256,
            content_type,
        })
    }

    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        let prefix = self.files_prefix()?;
        let store = self.services().ok_or(Error::Denied)?.store.clone();
        let full = format!("{prefix}{key}");
        if key.contains('/') || !valid_key(&full) {
            return Err(Error::Invalid("unknown key".into()));
        }
        match store.get(&full).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(crate::storage::StoreError::NotFound) => Ok(None),
            Err(e) => Err(Error::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("image.jpg").as_deref(), Some("image.jpg"));
        assert_eq!(safe_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_name("a b?.pdf").as_deref(), Some("a_b_.pdf"));
        assert_eq!(safe_name("..."), None);
        assert_eq!(safe_name(""), None);
    }
}
