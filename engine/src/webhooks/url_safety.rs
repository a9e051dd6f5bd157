//! Outbound URL safety (SSRF). A webhook URL chosen by a tenant must not reach the engine's own
//! network: loopback, private (RFC 1918, ULA), link-local (and so cloud metadata services),
//! CGNAT, unspecified, multicast and reserved addresses are refused, at creation and again at
//! delivery after DNS resolution (a name can be re-pointed after it was checked). The operator
//! switches this off with `webhook_allow_private` (for receivers on an internal network).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

pub const MAX_URL_LEN: usize = 2048;

/// Shape of a webhook URL: absolute http(s) with a host and no credentials.
pub fn parse(raw: &str) -> Result<Url, &'static str> {
    if raw.len() > MAX_URL_LEN {
        return Err("must be at most 2048 characters");
    }
    let url = Url::parse(raw.trim()).map_err(|_| "must be an absolute http or https URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are allowed");
    }
    if url.host().is_none() {
        return Err("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; authenticate receivers with the signature");
    }
    Ok(url)
}

fn v4_blocked(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", including 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata 169.254.169.254
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
}

fn v6_blocked(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_blocked(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    s[..6] == [0; 6] // ::/96: unspecified, loopback, IPv4-compatible
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4] && v4_blocked(embedded(s[6], s[7])))
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x2002 && v4_blocked(embedded(s[1], s[2]))) // 6to4
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
        || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7, including fd00:ec2::254
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
}

/// True for addresses a webhook may not reach unless private targets are allowed.
pub fn blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_blocked(v4),
        IpAddr::V6(v6) => v6_blocked(v6),
    }
}

fn refused(host: &str, ip: IpAddr) -> String {
    format!("{host} is or resolves to {ip}, a loopback, private, link-local or reserved address")
}

fn is_local_name(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

/// The check made when a subscription is created. A name that does not resolve (yet) is
/// accepted: the delivery-time check still applies to whatever it resolves to then.
pub async fn check_at_create(url: &Url) -> Result<(), String> {
    match url.host() {
        None => Err("must name a host".into()),
        Some(Host::Ipv4(ip)) => check_ip(url, IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => check_ip(url, IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            if is_local_name(name) {
                return Err(format!("{name} is a loopback name"));
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((name, port));
            if let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(3), lookup).await {
                for a in addrs {
                    if blocked(a.ip()) {
                        return Err(refused(name, a.ip()));
                    }
                }
            }
            Ok(())
        }
    }
}

fn check_ip(url: &Url, ip: IpAddr) -> Result<(), String> {
    if blocked(ip) {
        Err(refused(url.host_str().unwrap_or_default(), ip))
    } else {
        Ok(())
    }
}

/// The delivery-time check of an IP-literal host (names are checked by [`SafeResolver`]).
pub fn check_literal(url: &Url) -> Result<(), String> {
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(url, IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => check_ip(url, IpAddr::V6(ip)),
        Some(Host::Domain(name)) if is_local_name(name) => {
            Err(format!("{name} is a loopback name"))
        }
        _ => Ok(()),
    }
}

/// The HTTP client's DNS resolver: it resolves as usual and refuses the connection when any
/// address of the name is not public, so the address checked is the address connected to.
pub struct SafeResolver;

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| blocked(a.ip())) {
                return Err(refused(&host, bad.ip()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_non_public_addresses() {
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(blocked(ip(s)), "{s}");
        }
        for s in [
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(!blocked(ip(s)), "{s}");
        }
    }

    #[test]
    fn url_shapes() {
        assert!(parse("https://hooks.example.com/x").is_ok());
        assert!(parse("ftp://example.com").is_err());
        assert!(parse("https://user:pw@example.com").is_err());
        assert!(parse("not a url").is_err());
        assert!(parse("file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn create_check_catches_literals_and_loopback_names() {
        for u in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]/",
        ] {
            let url = parse(u).unwrap();
            assert!(check_at_create(&url).await.is_err(), "{u}");
        }
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_private_addresses() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let err = match SafeResolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("localhost"), "{err}");
    }
}
