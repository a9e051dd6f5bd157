//! Encryption at rest for the secrets a tenant gives us (webhook signing secrets of payment
//! providers, connector credentials): AES-256-GCM with a random 96-bit nonce per value, and
//! associated data that binds a ciphertext to its tenant and purpose, so a value copied into
//! another tenant's row (or another column) does not decrypt.
//!
//! The key comes from `LUMIRE_SECRET_KEY` (32 bytes, base64). Without it, the engine creates
//! `<data_dir>/secret.key` on first start (mode 0600) and uses that: right for one embedded
//! process; several processes against one PostgreSQL must all be given the same key.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key: {0}")]
    Key(String),
    #[error("a stored secret could not be decrypted (wrong LUMIRE_SECRET_KEY or tampered value)")]
    Decrypt,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
        }
    }

    /// The configured key (base64), or the key file under `data_dir`, created when missing.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<SecretBox, SecretError> {
        if let Some(b64) = configured {
            return Ok(SecretBox::from_key(&decode_key(b64)?));
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(SecretBox::from_key(&decode_key(s.trim())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                std::fs::create_dir_all(data_dir).map_err(|e| SecretError::Key(e.to_string()))?;
                write_private(&path, &B64.encode(key))?;
                tracing::info!(path = %path.display(), "created a new secret key file");
                Ok(SecretBox::from_key(&key))
            }
            Err(e) => Err(SecretError::Key(format!("{}: {e}", path.display()))),
        }
    }

    /// Encrypts `plain`, bound to `context` (for example `"<tenant>/stripe_webhook"`).
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and nonce length cannot fail.
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SecretError::Decrypt)?;
        if raw.len() <= NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Decrypt)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }
}

fn decode_key(b64: &str) -> Result<[u8; 32], SecretError> {
    let bytes = B64
        .decode(b64.trim())
        .map_err(|_| SecretError::Key("LUMIRE_SECRET_KEY must be base64".into()))?;
    bytes
        .try_into()
        .map_err(|_| SecretError::Key("LUMIRE_SECRET_KEY must decode to 32 bytes".into()))
}

fn write_private(path: &Path, contents: &str) -> Result<(), SecretError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| SecretError::Key(format!("{}: {e}", path.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| SecretError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let sealed = b.seal("t1/stripe", "whsec_abc");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(b.open("t1/stripe", &sealed).unwrap(), "whsec_abc");
        assert!(b.open("t2/stripe", &sealed).is_err(), "bound to its tenant");
        assert!(b.open("t1/stripe", "v1:AAAA").is_err());
        let other = SecretBox::from_key(&[8u8; 32]);
        assert!(
            other.open("t1/stripe", &sealed).is_err(),
            "bound to its key"
        );
        assert_ne!(sealed, b.seal("t1/stripe", "whsec_abc"), "fresh nonce");
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("lumire-secret-{}", ulid::Ulid::new()));
        let a = SecretBox::load(None, &dir).unwrap();
        let sealed = a.seal("x", "y");
        let b = SecretBox::load(None, &dir).unwrap();
        assert_eq!(b.open("x", &sealed).unwrap(), "y");
        assert!(SecretBox::load(Some("not base64!"), &dir).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
