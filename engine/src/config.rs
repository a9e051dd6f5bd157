//! Engine settings: defaults, then an optional `lumire.toml`, then `LUMIRE_*` / `DATABASE_URL`
//! environment variables (the last one wins). Every setting is documented in `docs/configuration.md`.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds to.
    pub listen: String,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Directory for the SQLite file (by default) and the local object store.
    pub data_dir: PathBuf,
    /// `smtp://user:pass@host:port` or `smtps://...`; without it mail stays in the outbox.
    pub smtp_url: Option<String>,
    /// Sender address of outgoing mail.
    pub mail_from: String,
    /// Public base URL, used in links inside e-mails.
    pub public_url: String,
    /// Mark cookies `Secure` (turn off only for local development over plain HTTP).
    pub cookie_secure: bool,
    /// Largest accepted request body in bytes (larger bodies get 413).
    pub max_body_bytes: usize,
    /// Operator session lifetime in hours.
    pub session_ttl_hours: i64,
    /// Failed logins allowed per e-mail and tenant within `login_window_secs` before 429.
    pub login_max_failures: i64,
    pub login_window_secs: i64,
    /// The longest delay the login back-off imposes after the limit (seconds).
    pub login_backoff_max_secs: i64,
    /// Largest database pool size.
    pub db_max_connections: u32,
    /// Run background jobs (mail and webhook delivery) in this process.
    pub run_jobs: bool,
    /// WebAuthn relying-party id (the site's domain) and origin.
    pub webauthn_rp_id: String,
    pub webauthn_origin: String,
    /// S3-compatible object storage: when a bucket is set, objects go there instead of
    /// `data_dir/objects`.
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// Key (32 bytes, base64) that encrypts tenants' stored secrets; without it the engine
    /// keeps one in `data_dir/secret.key`.
    pub secret_key: Option<String>,
    /// Let webhook URLs reach loopback, private, link-local and other non-public addresses
    /// (receivers on an internal network; tests). Off by default: an SSRF guard.
    pub webhook_allow_private: bool,
    /// Directory of trusted native connector libraries (full trust; operator-installed).
    pub native_connectors_dir: Option<PathBuf>,
    /// Seconds between scheduled syncs of each connector configuration (0 turns them off).
    pub sync_interval_secs: i64,
    /// Directory of bundled WebAssembly plugins (`*.wasm` components), installed at start-up.
    /// Missing or empty: no plugins.
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached (default `data_dir/plugin-cache`).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Longest a plugin call may run (wall clock, enforced by epoch interruption).
    pub plugin_timeout_ms: u64,
    /// Largest linear memory of one plugin call, in MiB.
    pub plugin_memory_mb: u64,
    /// KiB of each pooled plugin memory reset in place (`memset`) after a call instead of being
    /// unmapped (rounded up to whole host pages); 0 restores wasmtime's copy-on-write images
    /// reset with `madvise`.
    /// Unmapping costs a TLB shootdown to every core per call (docs/plugins.md, "Runtime").
    pub plugin_keep_resident_kib: u64,
    /// Write `/tmp/perf-PID.map` naming the plugins' compiled functions, so that `perf` shows
    /// guest code by name instead of `[unknown]` (profiling only; the file grows with every
    /// compiled or loaded plugin).
    pub plugin_perfmap: bool,
    /// Largest response body a plugin may return.
    pub plugin_max_response_bytes: usize,
    /// Largest request body a plugin route accepts (document uploads), in place of
    /// `max_body_bytes`.
    pub plugin_max_request_bytes: usize,
    /// Let plugins' outbound HTTP (and connectors reaching a tenant's endpoint) go to loopback,
    /// private and other non-public addresses (platforms on an internal network; tests). Off by
    /// default: an SSRF guard.
    pub plugin_http_allow_private: bool,
    /// How long a tenant's feature flags (which plugins it enabled) are cached for plugin
    /// requests, in milliseconds; 0 reads them on every request. Another process's change is
    /// seen within this time; this process's own changes at once.
    pub plugin_flags_cache_ms: u64,
    /// Bearer token `/metrics` asks for; unset, `/metrics` is not served (404).
    pub metrics_token: Option<String>,
    /// Abuse limits (`http::limits`); 0 turns one off.
    pub rate_public_per_minute: u32,
    pub rate_register_per_hour: u32,
    pub rate_forgot_per_hour: u32,
    pub rate_partner_failures_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:4000".into(),
            database_url: "sqlite://./data/lumire.db".into(),
            data_dir: PathBuf::from("./data"),
            smtp_url: None,
            mail_from: "LumireCRM <no-reply@localhost>".into(),
            public_url: "http://127.0.0.1:4000".into(),
            cookie_secure: false,
            max_body_bytes: 2 * 1024 * 1024,
            session_ttl_hours: 24 * 7,
            login_max_failures: 5,
            login_backoff_max_secs: 60,
            login_window_secs: 900,
            db_max_connections: 10,
            run_jobs: true,
            webauthn_rp_id: "localhost".into(),
            webauthn_origin: "http://localhost:4000".into(),
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            secret_key: None,
            webhook_allow_private: false,
            native_connectors_dir: None,
            sync_interval_secs: 300,
            plugins_dir: PathBuf::from("./plugins/dist"),
            plugin_cache_dir: None,
            plugin_timeout_ms: 5000,
            plugin_memory_mb: 64,
            plugin_keep_resident_kib: 256,
            plugin_perfmap: false,
            plugin_max_response_bytes: 4 * 1024 * 1024,
            plugin_max_request_bytes: 12 * 1024 * 1024,
            plugin_http_allow_private: false,
            plugin_flags_cache_ms: 1000,
            metrics_token: None,
            rate_public_per_minute: 600,
            rate_register_per_hour: 20,
            rate_forgot_per_hour: 30,
            rate_partner_failures_per_minute: 10,
        }
    }
}

impl std::fmt::Debug for Settings {
    // Secrets (database and SMTP passwords) never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("public_url", &self.public_url)
            .field("cookie_secure", &self.cookie_secure)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("plugins_dir", &self.plugins_dir)
            .finish_non_exhaustive()
    }
}

fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Toml {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid value for {name}: {value}")]
    Env { name: String, value: String },
}

impl Settings {
    /// Loads settings from `lumire.toml` (or the file named by `LUMIRE_CONFIG`) and the environment.
    pub fn load() -> Result<Settings, ConfigError> {
        let explicit = std::env::var("LUMIRE_CONFIG").ok();
        let path = explicit.clone().unwrap_or_else(|| "lumire.toml".into());
        let mut s = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Settings>(&text).map_err(|e| ConfigError::Toml {
                path: path.clone(),
                source: Box::new(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                Settings::default()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Env {
                name: name.into(),
                value: v,
            })
        }
        let data_dir_set = get("LUMIRE_DATA_DIR").is_some();
        if let Some(v) = get("LUMIRE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("LUMIRE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = v;
        } else if data_dir_set && self.database_url == Settings::default().database_url {
            self.database_url = format!("sqlite://{}/lumire.db", self.data_dir.display());
        }
        if let Some(v) = get("LUMIRE_SMTP_URL") {
            self.smtp_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("LUMIRE_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = get("LUMIRE_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = get("LUMIRE_COOKIE_SECURE") {
            self.cookie_secure = parse("LUMIRE_COOKIE_SECURE", v)?;
        }
        if let Some(v) = get("LUMIRE_MAX_BODY_BYTES") {
            self.max_body_bytes = parse("LUMIRE_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = get("LUMIRE_SESSION_TTL_HOURS") {
            self.session_ttl_hours = parse("LUMIRE_SESSION_TTL_HOURS", v)?;
        }
        if let Some(v) = get("LUMIRE_LOGIN_MAX_FAILURES") {
            self.login_max_failures = parse("LUMIRE_LOGIN_MAX_FAILURES", v)?;
        }
        if let Some(v) = get("LUMIRE_LOGIN_BACKOFF_MAX_SECS") {
            self.login_backoff_max_secs = parse("LUMIRE_LOGIN_BACKOFF_MAX_SECS", v)?;
        }
        if let Some(v) = get("LUMIRE_LOGIN_WINDOW_SECS") {
            self.login_window_secs = parse("LUMIRE_LOGIN_WINDOW_SECS", v)?;
        }
        if let Some(v) = get("LUMIRE_DB_MAX_CONNECTIONS") {
            self.db_max_connections = parse("LUMIRE_DB_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = get("LUMIRE_RUN_JOBS") {
            self.run_jobs = parse("LUMIRE_RUN_JOBS", v)?;
        }
        if let Some(v) = get("LUMIRE_WEBAUTHN_RP_ID") {
            self.webauthn_rp_id = v;
        }
        if let Some(v) = get("LUMIRE_WEBAUTHN_ORIGIN") {
            self.webauthn_origin = v;
        }
        let opt = |v: String| Some(v).filter(|s| !s.is_empty());
        if let Some(v) = get("LUMIRE_S3_BUCKET") {
            self.s3_bucket = opt(v);
        }
        if let Some(v) = get("LUMIRE_S3_ENDPOINT") {
            self.s3_endpoint = opt(v);
        }
        if let Some(v) = get("LUMIRE_S3_REGION") {
            self.s3_region = v;
        }
        if let Some(v) = get("LUMIRE_S3_ACCESS_KEY_ID") {
            self.s3_access_key_id = opt(v);
        }
        if let Some(v) = get("LUMIRE_S3_SECRET_ACCESS_KEY") {
            self.s3_secret_access_key = opt(v);
        }
        if let Some(v) = get("LUMIRE_SECRET_KEY") {
            self.secret_key = opt(v);
        }
        if let Some(v) = get("LUMIRE_SYNC_INTERVAL_SECS") {
            self.sync_interval_secs = parse("LUMIRE_SYNC_INTERVAL_SECS", v)?;
        }
        if let Some(v) = get("LUMIRE_NATIVE_CONNECTORS_DIR") {
            self.native_connectors_dir = opt(v).map(PathBuf::from);
        }
        if let Some(v) = get("LUMIRE_WEBHOOK_ALLOW_PRIVATE") {
            self.webhook_allow_private = parse("LUMIRE_WEBHOOK_ALLOW_PRIVATE", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGINS_DIR") {
            self.plugins_dir = PathBuf::from(v);
        }
        if let Some(v) = get("LUMIRE_PLUGIN_CACHE_DIR") {
            self.plugin_cache_dir = opt(v).map(PathBuf::from);
        }
        if let Some(v) = get("LUMIRE_PLUGIN_TIMEOUT_MS") {
            self.plugin_timeout_ms = parse("LUMIRE_PLUGIN_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_MEMORY_MB") {
            self.plugin_memory_mb = parse("LUMIRE_PLUGIN_MEMORY_MB", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_KEEP_RESIDENT_KIB") {
            self.plugin_keep_resident_kib = parse("LUMIRE_PLUGIN_KEEP_RESIDENT_KIB", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_PERFMAP") {
            self.plugin_perfmap = parse("LUMIRE_PLUGIN_PERFMAP", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_HTTP_ALLOW_PRIVATE") {
            self.plugin_http_allow_private = parse("LUMIRE_PLUGIN_HTTP_ALLOW_PRIVATE", v)?;
        }
        if let Some(v) = get("LUMIRE_RATE_PUBLIC_PER_MINUTE") {
            self.rate_public_per_minute = parse("LUMIRE_RATE_PUBLIC_PER_MINUTE", v)?;
        }
        if let Some(v) = get("LUMIRE_RATE_REGISTER_PER_HOUR") {
            self.rate_register_per_hour = parse("LUMIRE_RATE_REGISTER_PER_HOUR", v)?;
        }
        if let Some(v) = get("LUMIRE_RATE_FORGOT_PER_HOUR") {
            self.rate_forgot_per_hour = parse("LUMIRE_RATE_FORGOT_PER_HOUR", v)?;
        }
        if let Some(v) = get("LUMIRE_RATE_PARTNER_FAILURES_PER_MINUTE") {
            self.rate_partner_failures_per_minute =
                parse("LUMIRE_RATE_PARTNER_FAILURES_PER_MINUTE", v)?;
        }
        if let Some(v) = get("LUMIRE_METRICS_TOKEN") {
            self.metrics_token = Some(v).filter(|t| !t.is_empty());
        }
        if let Some(v) = get("LUMIRE_PLUGIN_MAX_REQUEST_BYTES") {
            self.plugin_max_request_bytes = parse("LUMIRE_PLUGIN_MAX_REQUEST_BYTES", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_MAX_RESPONSE_BYTES") {
            self.plugin_max_response_bytes = parse("LUMIRE_PLUGIN_MAX_RESPONSE_BYTES", v)?;
        }
        if let Some(v) = get("LUMIRE_PLUGIN_FLAGS_CACHE_MS") {
            self.plugin_flags_cache_ms = parse("LUMIRE_PLUGIN_FLAGS_CACHE_MS", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_data_dir_moves_the_database() {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "LUMIRE_DATA_DIR" => Some("/tmp/x".into()),
            "LUMIRE_LISTEN" => Some("0.0.0.0:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:9");
        assert_eq!(s.database_url, "sqlite:///tmp/x/lumire.db");
    }

    impl Settings {
        /// Applies one environment variable.
        fn set_one(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
            self.apply_env(|k| (k == key).then(|| value.to_string()))
        }
    }

    #[test]
    fn plugin_perf_map_is_off_unless_asked_for() {
        let mut s = Settings::default();
        assert!(!s.plugin_perfmap);
        s.set_one("LUMIRE_PLUGIN_PERFMAP", "true").unwrap();
        assert!(s.plugin_perfmap);
        assert!(s.set_one("LUMIRE_PLUGIN_PERFMAP", "yes").is_err());
    }

    #[test]
    fn plugin_memory_kept_resident_defaults_to_256_kib_and_can_be_turned_off() {
        let mut s = Settings::default();
        assert_eq!(s.plugin_keep_resident_kib, 256);
        s.set_one("LUMIRE_PLUGIN_KEEP_RESIDENT_KIB", "0").unwrap();
        assert_eq!(s.plugin_keep_resident_kib, 0);
    }

    #[test]
    fn bad_numbers_are_named() {
        let mut s = Settings::default();
        let err = s.set_one("LUMIRE_MAX_BODY_BYTES", "lots").unwrap_err();
        assert!(err.to_string().contains("LUMIRE_MAX_BODY_BYTES"));
    }

    #[test]
    fn webhooks_refuse_private_targets_unless_allowed() {
        let mut s = Settings::default();
        assert!(!s.webhook_allow_private);
        s.set_one("LUMIRE_WEBHOOK_ALLOW_PRIVATE", "true").unwrap();
        assert!(s.webhook_allow_private);
    }

    #[test]
    fn debug_redacts_passwords() {
        let s = Settings {
            database_url: "postgres://u:secret@h/db".into(),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("secret"));
    }
}
