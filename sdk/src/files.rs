//! Files in the engine's object storage (capability `storage`), under a prefix the host keeps
//! per tenant and plugin: uploads, generated documents.

use crate::v2::files as raw;
pub use raw::{Error, StoredFile};

/// Stores `content` under the file name `name` (the host makes it unique and safe).
pub fn put(name: &str, content_type: &str, content: &[u8]) -> Result<StoredFile, Error> {
    raw::put(name, content_type, content)
}

/// Reads back a file this plugin stored for this tenant (`None` when there is none).
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    raw::get(key)
}
