//! TLS trust of a tenant's integration configuration: which server certificates a connector
//! session accepts. Trading platforms' servers often present self-signed certificates; a
//! configuration then trusts its own CA or pins the server's certificate. There is no switch,
//! per configuration or global, that accepts any certificate.
//!
//! Given in the configuration's credentials (stored encrypted): `tls_ca_cert` (PEM: the CA that
//! issued the server's certificate, or the self-signed certificate itself; then the only trust)
//! or `tls_cert_sha256` (the SHA-256 of the server certificate's DER encoding, 64 hex digits,
//! colons allowed). Neither: the machine's public roots.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The secret of an integration configuration holding the CA certificate(s) to trust (PEM).
pub const CA_SETTING: &str = "tls_ca_cert";
/// The secret holding the SHA-256 fingerprint of the server's certificate (hex, colons allowed).
pub const PIN_SETTING: &str = "tls_cert_sha256";

/// Which server certificates a session accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The machine's public CA roots.
    PublicRoots,
    /// Only certificates issued by these CAs (or these self-signed certificates).
    Ca(Vec<CertificateDer<'static>>),
    /// Only the certificate with this SHA-256 fingerprint of its DER encoding.
    Pinned([u8; 32]),
}

impl TlsTrust {
    /// The trust a configuration's secrets ask for; an unreadable setting names itself.
    pub fn from_settings(secrets: &HashMap<String, String>) -> Result<TlsTrust, String> {
        TlsTrust::from_lookup(|k| secrets.get(k).map(String::as_str)).map_err(|(_, m)| m)
    }

    /// [`TlsTrust::from_settings`] over any lookup of settings; an error names its setting.
    pub fn from_lookup<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<TlsTrust, (&'static str, String)> {
        let given = |k: &str| get(k).map(str::trim).filter(|v| !v.is_empty());
        match (given(CA_SETTING), given(PIN_SETTING)) {
            (Some(_), Some(_)) => Err((
                PIN_SETTING,
                format!("give either {CA_SETTING} or {PIN_SETTING}, not both"),
            )),
            (Some(pem), None) => {
                let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        (
                            CA_SETTING,
                            format!("{CA_SETTING} is not PEM certificates: {e}"),
                        )
                    })?;
                if certs.is_empty() {
                    return Err((
                        CA_SETTING,
                        format!("{CA_SETTING} holds no certificate (-----BEGIN CERTIFICATE-----)"),
                    ));
                }
                Ok(TlsTrust::Ca(certs))
            }
            (None, Some(pin)) => {
                let hex_digits: String = pin.chars().filter(|c| *c != ':').collect();
                let bytes = hex::decode(&hex_digits)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        (
                            PIN_SETTING,
                            format!(
                                "{PIN_SETTING} must be 64 hex digits (a SHA-256), colons allowed"
                            ),
                        )
                    })?;
                Ok(TlsTrust::Pinned(bytes))
            }
            (None, None) => Ok(TlsTrust::PublicRoots),
        }
    }

    /// The rustls configuration of this trust (HTTP/1.1 by ALPN).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = match self {
            TlsTrust::PublicRoots => return Ok(public_roots()),
            TlsTrust::Ca(certs) => {
                let mut roots = RootCertStore::empty();
                for c in certs {
                    roots
                        .add(c.clone())
                        .map_err(|e| format!("{CA_SETTING}: {e}"))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            TlsTrust::Pinned(sha256) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    sha256: *sha256,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The public roots' configuration, loaded once.
fn public_roots() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system CA certificate could not be read");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system CA roots for connector sessions");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = match ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
                // The ring provider supports the default versions; kept total anyway.
                Err(_) => ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Accepts exactly the certificate with the pinned fingerprint, whatever its issuer, names or
/// dates (a pin is the tenant's statement of which certificate the server has); the handshake's
/// signatures are still verified, so only the holder of that certificate's key gets through.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if subtle::ConstantTimeEq::ct_eq(&got[..], &self.sha256[..]).into() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate (SHA-256 {}) is not the pinned one ({PIN_SETTING})",
                hex::encode(got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn trust_settings_are_checked() {
        assert_eq!(
            TlsTrust::from_settings(&secrets(&[])),
            Ok(TlsTrust::PublicRoots)
        );
        let pin = "AB:".repeat(31) + "AB";
        assert_eq!(
            TlsTrust::from_settings(&secrets(&[(PIN_SETTING, &pin)])),
            Ok(TlsTrust::Pinned([0xab; 32]))
        );
        let e = TlsTrust::from_settings(&secrets(&[(PIN_SETTING, "abcd")])).unwrap_err();
        assert!(e.contains(PIN_SETTING), "{e}");
        let e = TlsTrust::from_settings(&secrets(&[(CA_SETTING, "not pem")])).unwrap_err();
        assert!(e.contains(CA_SETTING), "{e}");
        let e = TlsTrust::from_settings(&secrets(&[(CA_SETTING, "x"), (PIN_SETTING, &pin)]))
            .unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }
}
