//! Outbound HTTP of one connector session: its own keep-alive connections, one per origin,
//! that no other session, configuration or tenant ever uses.
//!
//! Trading platforms' manager APIs are stateful over the connection: the MT5 Web API binds an
//! authenticated manager session to the TCP connection on which `auth/start` and `auth/answer`
//! were made, and every later command must travel over that same keep-alive connection. A pooled
//! client cannot promise that (a request may leave on any idle connection of the pool, or on a
//! new one while the previous connection is still being handed back), and a pool shared by
//! tenants lets one tenant's command run in another tenant's manager session. So a connector
//! instance (one tenant, one integration configuration, one engine operation) gets a
//! [`SessionHttp`]:
//!
//! - one HTTP/1.1 connection per origin (scheme, host, port), opened at the first request and
//!   used for every later one, one request at a time (the guest is single-threaded);
//! - when the server has closed it (idle timeout, restart), the next request opens a new one,
//!   on which the platform answers as to a stranger: the connector authenticates again;
//! - a request that fails or times out after it was sent closes the connection (its answer
//!   may still arrive on it, and must not be read as the answer to the next request);
//! - dropped with the instance, which closes its connections.
//!
//! TLS trust is per integration configuration ([`TlsTrust`]): the public CA roots by default,
//! exactly a CA certificate the tenant gives, or the server certificate's SHA-256 fingerprint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::connectors::tls::TlsTrust;
use crate::webhooks::url_safety;

/// Why a session request failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    Timeout,
    /// Connecting, TLS, or the connection closed before the answer.
    Failed(String),
    /// The engine refused the target (a private address).
    Denied(String),
    /// The request itself cannot be sent (bad header, ...).
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

/// An answer, its body read whole.
pub struct SessionResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connector session's connections (see the module docs).
pub struct SessionHttp {
    tls: Arc<ClientConfig>,
    allow_private: bool,
    conns: HashMap<Origin, SendRequest<Full<Bytes>>>,
    /// Connections opened so far (in the session's trace).
    opened: u64,
}

impl SessionHttp {
    pub fn new(trust: &TlsTrust, allow_private: bool) -> Result<SessionHttp, String> {
        Ok(SessionHttp {
            tls: trust.client_config()?,
            allow_private,
            conns: HashMap::new(),
            opened: 0,
        })
    }

    /// How many connections this session has opened.
    pub fn connections_opened(&self) -> u64 {
        self.opened
    }

    /// Sends one request over the session's connection to the URL's origin (opened when there
    /// is none, or the server closed it) and reads the answer, at most `max_body` bytes, all
    /// within `timeout`.
    pub async fn send(
        &mut self,
        method: http::Method,
        url: &url::Url,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<SessionResponse, SessionError> {
        let origin = Origin {
            https: url.scheme() == "https",
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or(80),
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", origin.host),
            None => origin.host.clone(),
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(target)
            .header(http::header::HOST, host_header)
            // The MT5 Web API asks for it on every request ("Connection Maintenance"); it is
            // HTTP/1.1's default anyway.
            .header(http::header::CONNECTION, "keep-alive");
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("connection") {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SessionError::Invalid(e.to_string()))?;
        let result = tokio::time::timeout(timeout, self.exchange(&origin, req, max_body)).await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conns.remove(&origin);
                Err(e)
            }
            Err(_) => {
                // The answer may still come on this connection: it cannot carry another request.
                self.conns.remove(&origin);
                Err(SessionError::Timeout)
            }
        }
    }

    async fn exchange(
        &mut self,
        origin: &Origin,
        req: http::Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<SessionResponse, SessionError> {
        // A connection the server closed while idle is noticed here, before anything is sent
        // on it: then a new one is opened.
        let reusable = match self.conns.get_mut(origin) {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.conns.remove(origin);
            let sender = self.connect(origin).await?;
            self.conns.insert(origin.clone(), sender);
        }
        let Some(sender) = self.conns.get_mut(origin) else {
            return Err(SessionError::Failed("no connection".into()));
        };
        sender
            .ready()
            .await
            .map_err(|e| SessionError::Failed(format!("the connection closed: {e}")))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            SessionError::Failed(format!("the connection closed before the answer: {e}"))
        })?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body_stream = resp.into_body();
        let mut body = Vec::new();
        while let Some(frame) = body_stream.frame().await {
            let frame =
                frame.map_err(|e| SessionError::Failed(format!("reading the answer: {e}")))?;
            if let Some(chunk) = frame.data_ref() {
                if body.len() + chunk.len() > max_body {
                    return Err(SessionError::Failed(format!(
                        "response body over {} MiB",
                        max_body >> 20
                    )));
                }
                body.extend_from_slice(chunk);
            }
        }
        Ok(SessionResponse {
            status,
            headers,
            body,
        })
    }

    async fn connect(&mut self, origin: &Origin) -> Result<SendRequest<Full<Bytes>>, SessionError> {
        let host = origin.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::lookup_host((host, origin.port)),
        )
        .await
        .map_err(|_| SessionError::Timeout)?
        .map_err(|e| SessionError::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| url_safety::blocked(a.ip()))
        {
            return Err(SessionError::Denied(format!(
                "{host} resolves to {}, which is not a public address",
                bad.ip()
            )));
        }
        let mut last = SessionError::Failed(format!("{host} has no address"));
        let mut stream = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = SessionError::Failed(format!("connecting to {addr}: {e}")),
                Err(_) => last = SessionError::Timeout,
            }
        }
        let stream = stream.ok_or(last)?;
        let _ = stream.set_nodelay(true);
        self.opened += 1;
        tracing::debug!(
            host,
            port = origin.port,
            opened = self.opened,
            "connector session connection"
        );
        if origin.https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| SessionError::Invalid(format!("{host} is not a server name")))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, stream)
                .await
                .map_err(|e| {
                    SessionError::Failed(format!(
                        "TLS with {host}: {}",
                        super::outbound::error_chain(&e)
                    ))
                })?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(stream)).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, SessionError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SessionError::Failed(format!("HTTP handshake: {e}")))?;
    // The connection's task ends when the server closes it or the session drops its sender.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connector session connection ended");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering each request with the number of the connection it came on; a
    /// request for `/close` is answered, then its connection closed; `/hang` is never answered.
    async fn numbering_server() -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 1024];
                        let Ok(read) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        if head.starts_with("GET /hang") {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        let keep = head.to_ascii_lowercase().contains("connection: keep-alive");
                        let body = format!("{n} {keep}");
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        if head.starts_with("GET /close") {
                            return;
                        }
                    }
                });
            }
        });
        (url, count)
    }

    async fn get(s: &mut SessionHttp, url: &str) -> Result<String, SessionError> {
        let url = url::Url::parse(url).unwrap();
        s.send(
            http::Method::GET,
            &url,
            &[],
            Vec::new(),
            Duration::from_millis(500),
            1 << 20,
        )
        .await
        .map(|r| String::from_utf8(r.body).unwrap())
    }

    #[tokio::test]
    async fn a_session_keeps_one_connection_until_the_server_closes_it() {
        let (url, count) = numbering_server().await;
        let mut s = SessionHttp::new(&TlsTrust::PublicRoots, true).unwrap();
        for _ in 0..20 {
            assert_eq!(get(&mut s, &format!("{url}/a")).await.unwrap(), "1 true");
        }
        // Another session (another tenant, say) never gets this session's connection.
        let mut other = SessionHttp::new(&TlsTrust::PublicRoots, true).unwrap();
        assert_eq!(
            get(&mut other, &format!("{url}/a")).await.unwrap(),
            "2 true"
        );
        assert_eq!(get(&mut s, &format!("{url}/a")).await.unwrap(), "1 true");
        // The server closes the connection: the next request opens a new one.
        assert_eq!(
            get(&mut s, &format!("{url}/close")).await.unwrap(),
            "1 true"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&mut s, &format!("{url}/a")).await.unwrap(), "3 true");
        // An answer that does not come: the connection is given up, never reused.
        assert_eq!(
            get(&mut s, &format!("{url}/hang")).await,
            Err(SessionError::Timeout)
        );
        assert_eq!(get(&mut s, &format!("{url}/a")).await.unwrap(), "4 true");
        assert_eq!(count.load(Ordering::SeqCst), 4);
        assert_eq!(s.connections_opened(), 3);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let (url, _) = numbering_server().await;
        let mut s = SessionHttp::new(&TlsTrust::PublicRoots, false).unwrap();
        assert!(matches!(
            get(&mut s, &format!("{url}/a")).await,
            Err(SessionError::Denied(_))
        ));
    }
}
