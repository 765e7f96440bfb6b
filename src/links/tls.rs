//! TLS with rustls, configured from Redis's `tls-*` directives: the server
//! side of the client port (`tls-port`) and, for `tls-replication yes`, the
//! client side of the links to Redis nodes and peer daemons.
//!
//! Everything is read and checked when the configuration loads, so a bad
//! certificate, a key that does not match it or an option rustls cannot
//! honour stops the start with the directive in question (the config layer
//! turns [`TlsError`] into `file:line: reason`). What rustls cannot do is
//! refused, never ignored: encrypted private keys (`tls-key-file-pass`),
//! TLSv1 and TLSv1.1, finite-field DHE (`tls-dh-params-file`), and cipher
//! names outside the suites rustls implements.
//!
//! Plain TCP does not go through here: a plain connection keeps its owned
//! socket halves, with no extra layer or copy.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, StoresServerSessions, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedCipherSuite,
    SupportedProtocolVersion,
};

/// The `tls-*` directives, as written (paths relative to `dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
    pub key_file_pass: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub client_key_file_pass: String,
    pub ca_cert_file: String,
    pub ca_cert_dir: String,
    /// `tls-auth-clients`: `yes`, `no` or `optional`.
    pub auth_clients: String,
    pub protocols: String,
    pub ciphers: String,
    pub ciphersuites: String,
    pub prefer_server_ciphers: bool,
    pub dh_params_file: String,
    pub session_caching: bool,
    pub session_cache_size: u64,
    pub session_cache_timeout: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: String::new(),
            key_file: String::new(),
            key_file_pass: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            client_key_file_pass: String::new(),
            ca_cert_file: String::new(),
            ca_cert_dir: String::new(),
            auth_clients: "yes".into(),
            protocols: String::new(),
            ciphers: String::new(),
            ciphersuites: String::new(),
            prefer_server_ciphers: false,
            dh_params_file: String::new(),
            session_caching: true,
            session_cache_size: 20480,
            session_cache_timeout: 300,
        }
    }
}

/// A TLS option that cannot be put in force, with the directive it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    pub directive: &'static str,
    pub message: String,
}

fn err(directive: &'static str, message: impl Into<String>) -> TlsError {
    TlsError {
        directive,
        message: message.into(),
    }
}

/// The OpenSSL names `tls-ciphers` takes (TLSv1.2) for the suites rustls
/// implements, and the TLSv1.3 names of `tls-ciphersuites`.
const TLS12_NAMES: &[(&str, SupportedCipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];
const TLS13_NAMES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// A cipher list in OpenSSL's syntax (names separated by `:`, `,` or
/// spaces), each name one of `table`'s.
fn cipher_list(
    directive: &'static str,
    value: &str,
    table: &[(&str, SupportedCipherSuite)],
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut out = Vec::new();
    for name in value.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let Some((_, suite)) = table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            return Err(err(
                directive,
                format!(
                    "cipher '{name}' is not supported by raftinel (rustls); use names among {}",
                    known.join(":")
                ),
            ));
        };
        out.push(*suite);
    }
    if out.is_empty() {
        return Err(err(directive, "no cipher given"));
    }
    Ok(out)
}

/// The crypto provider (ring) restricted to the configured cipher lists.
fn provider(s: &TlsSettings) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut p = ring::default_provider();
    let tls12 = if s.ciphers.is_empty() {
        None
    } else {
        Some(cipher_list("tls-ciphers", &s.ciphers, TLS12_NAMES)?)
    };
    let tls13 = if s.ciphersuites.is_empty() {
        None
    } else {
        Some(cipher_list(
            "tls-ciphersuites",
            &s.ciphersuites,
            TLS13_NAMES,
        )?)
    };
    p.cipher_suites.retain(|suite| match suite {
        SupportedCipherSuite::Tls12(_) => tls12.as_ref().is_none_or(|l| l.contains(suite)),
        SupportedCipherSuite::Tls13(_) => tls13.as_ref().is_none_or(|l| l.contains(suite)),
    });
    Ok(Arc::new(p))
}

/// `tls-protocols` (Redis's syntax; empty = TLSv1.2 and TLSv1.3).
fn protocols(s: &TlsSettings) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    if s.protocols.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for p in s.protocols.split_whitespace() {
        match p.to_ascii_lowercase().as_str() {
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1" | "tlsv1.1" => {
                return Err(err(
                    "tls-protocols",
                    format!(
                        "{p} is not supported by raftinel (rustls speaks TLSv1.2 and TLSv1.3 only)"
                    ),
                ))
            }
            _ => return Err(err(
                "tls-protocols",
                "Invalid tls-protocols specified. Use a combination of 'TLSv1.2' and 'TLSv1.3'.",
            )),
        }
    }
    Ok(out)
}

fn read(directive: &'static str, base: &Path, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(base.join(path)).map_err(|e| {
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        err(directive, format!("can't read '{path}': {text}"))
    })
}

fn certs(
    directive: &'static str,
    base: &Path,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(directive, base, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            err(
                directive,
                format!("'{path}' is not a PEM certificate file: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(err(directive, format!("no certificate found in '{path}'")));
    }
    Ok(certs)
}

fn key(
    directive: &'static str,
    pass_directive: &'static str,
    base: &Path,
    path: &str,
    pass: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    const ENCRYPTED: &str = "encrypted private keys are not supported by raftinel (rustls reads unencrypted PEM keys only): decrypt it (`openssl pkey -in key.pem -out plain-key.pem`), keep it readable by the daemon only";
    if !pass.is_empty() {
        return Err(err(
            pass_directive,
            format!("{ENCRYPTED}, and remove {pass_directive}"),
        ));
    }
    let pem = read(directive, base, path)?;
    if pem.windows(9).any(|w| w == b"ENCRYPTED") {
        return Err(err(directive, format!("'{path}': {ENCRYPTED}")));
    }
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| err(directive, format!("no private key found in '{path}': {e}")))
}

/// `tls-ca-cert-file` and `tls-ca-cert-dir` (every PEM certificate in the
/// directory's files, as OpenSSL's hashed directory holds them).
fn roots(s: &TlsSettings, base: &Path, why: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    if s.ca_cert_file.is_empty() && s.ca_cert_dir.is_empty() {
        return Err(err(
            "tls-ca-cert-file",
            format!("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when {why}"),
        ));
    }
    if !s.ca_cert_file.is_empty() {
        for c in certs("tls-ca-cert-file", base, &s.ca_cert_file)? {
            store.add(c).map_err(|e| {
                err(
                    "tls-ca-cert-file",
                    format!("'{}': bad CA certificate: {e}", s.ca_cert_file),
                )
            })?;
        }
    }
    if !s.ca_cert_dir.is_empty() {
        let dir = base.join(&s.ca_cert_dir);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            err(
                "tls-ca-cert-dir",
                format!("can't read directory '{}': {e}", s.ca_cert_dir),
            )
        })?;
        let mut found = 0;
        for entry in entries.flatten() {
            let Ok(pem) = std::fs::read(entry.path()) else {
                continue;
            };
            for c in CertificateDer::pem_slice_iter(&pem).flatten() {
                if store.add(c).is_ok() {
                    found += 1;
                }
            }
        }
        if found == 0 {
            return Err(err(
                "tls-ca-cert-dir",
                format!("no CA certificate found in '{}'", s.ca_cert_dir),
            ));
        }
    }
    Ok(Arc::new(store))
}

/// A certificate and key rustls refused, said about the file at fault.
fn pair_error(cert_d: &'static str, key_d: &'static str, e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => err(
            key_d,
            "the private key does not match the certificate's public key",
        ),
        rustls::Error::InvalidCertificate(c) => err(
            cert_d,
            format!("the certificate cannot be used: {c:?} (rustls takes X.509 v3 certificates)"),
        ),
        other => err(key_d, other.to_string()),
    }
}

/// The server side of `tls-port`.
pub fn server_config(s: &TlsSettings, base: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    if s.cert_file.is_empty() {
        return Err(err("tls-cert-file", "No tls-cert-file configured!"));
    }
    if s.key_file.is_empty() {
        return Err(err("tls-key-file", "No tls-key-file configured!"));
    }
    if !s.dh_params_file.is_empty() {
        return Err(err(
            "tls-dh-params-file",
            "finite-field DH key exchange is not supported by raftinel (rustls uses ECDHE only); remove the directive",
        ));
    }
    let provider = provider(s)?;
    let versions = protocols(s)?;
    let chain = certs("tls-cert-file", base, &s.cert_file)?;
    let key = key(
        "tls-key-file",
        "tls-key-file-pass",
        base,
        &s.key_file,
        &s.key_file_pass,
    )?;
    let verifier = match s.auth_clients.as_str() {
        "no" => WebPkiClientVerifier::no_client_auth(),
        auth => {
            let roots = roots(s, base, "tls-auth-clients is enabled")?;
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if auth == "optional" {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| err("tls-ca-cert-file", e.to_string()))?
        }
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| err("tls-protocols", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| pair_error("tls-cert-file", "tls-key-file", e))?;
    cfg.ignore_client_order = s.prefer_server_ciphers;
    if s.session_caching {
        cfg.session_storage = Arc::new(SessionCache::new(
            s.session_cache_size,
            Duration::from_secs(s.session_cache_timeout),
        ));
    } else {
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    }
    Ok(Arc::new(cfg))
}

/// The client side of `tls-replication yes`: the links to Redis nodes and
/// peer daemons. The client certificate is `tls-client-cert-file` /
/// `tls-client-key-file`, else `tls-cert-file` / `tls-key-file` (as Redis).
/// Like Redis, the server's chain is verified against the CA but its name is
/// not (nodes are reached by IP and announce IPs).
pub fn client_config(s: &TlsSettings, base: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider(s)?;
    let versions = protocols(s)?;
    let roots = roots(s, base, "tls-replication is enabled")?;
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| err("tls-ca-cert-file", e.to_string()))?;
    let verifier = Arc::new(AnyName {
        inner,
        algs: provider.signature_verification_algorithms,
    });
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| err("tls-protocols", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let (cert_d, key_d, pass_d, cert, key_path, pass) = if s.client_cert_file.is_empty() {
        (
            "tls-cert-file",
            "tls-key-file",
            "tls-key-file-pass",
            &s.cert_file,
            &s.key_file,
            &s.key_file_pass,
        )
    } else {
        (
            "tls-client-cert-file",
            "tls-client-key-file",
            "tls-client-key-file-pass",
            &s.client_cert_file,
            &s.client_key_file,
            &s.client_key_file_pass,
        )
    };
    let cfg = if cert.is_empty() {
        b.with_no_client_auth()
    } else {
        if key_path.is_empty() {
            return Err(err(key_d, format!("No {key_d} configured!")));
        }
        let chain = certs(cert_d, base, cert)?;
        let key = key(key_d, pass_d, base, key_path, pass)?;
        b.with_client_auth_cert(chain, key)
            .map_err(|e| pair_error(cert_d, key_d, e))?
    };
    Ok(Arc::new(cfg))
}

/// The TLS handshake of an outbound link over its open TCP stream, bounded
/// like the connect. The name sent (SNI) is the host as configured.
pub async fn connect(
    cfg: &Arc<rustls::ClientConfig>,
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, super::connect::ConnectError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let name = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(literal.to_string())
            .map_err(|_| super::connect::ConnectError::Resolve(host.to_string()))?,
    };
    let connector = tokio_rustls::TlsConnector::from(cfg.clone());
    tokio::time::timeout(
        super::connect::CONNECT_TIMEOUT,
        connector.connect(name, stream),
    )
    .await
    .map_err(|_| super::connect::ConnectError::ConnectTimeout)?
    .map_err(super::connect::ConnectError::Io)
}

/// Verifies the server's chain and signatures, not its name.
#[derive(Debug)]
struct AnyName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The server's session cache as `tls-session-cache-size` (entries; 0 = no
/// bound, as OpenSSL) and `tls-session-cache-timeout` (seconds a session
/// may be resumed) set it.
#[derive(Debug)]
struct SessionCache {
    max: usize,
    ttl: Duration,
    inner: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    map: HashMap<Vec<u8>, (Vec<u8>, tokio::time::Instant)>,
    order: VecDeque<Vec<u8>>,
}

impl SessionCache {
    fn new(max: u64, ttl: Duration) -> SessionCache {
        SessionCache {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            ttl,
            inner: Mutex::new(Sessions::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, stored: tokio::time::Instant) -> bool {
        stored.elapsed() < self.ttl
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut s = self.lock();
        let now = tokio::time::Instant::now();
        if s.map.insert(key.clone(), (value, now)).is_none() {
            s.order.push_back(key);
        }
        while self.max > 0 && s.map.len() > self.max {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            s.map.remove(&old);
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let s = self.lock();
        let (v, at) = s.map.get(key)?;
        self.fresh(*at).then(|| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut s = self.lock();
        let (v, at) = s.map.remove(key)?;
        s.order.retain(|k| k != key);
        self.fresh(at).then_some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn session_cache_bounds_size_and_age() {
        let c = SessionCache::new(2, Duration::from_secs(300));
        assert!(c.put(b"a".to_vec(), b"1".to_vec()));
        assert!(c.put(b"b".to_vec(), b"2".to_vec()));
        assert!(c.put(b"c".to_vec(), b"3".to_vec()));
        assert_eq!(c.get(b"a"), None, "the oldest entry leaves past the size");
        assert_eq!(c.get(b"b"), Some(b"2".to_vec()));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(c.get(b"c"), Some(b"3".to_vec()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.get(b"c"), None, "expired at the timeout");
        assert_eq!(c.take(b"b"), None);
        let unbounded = SessionCache::new(0, Duration::from_secs(1));
        for i in 0..100u8 {
            unbounded.put(vec![i], vec![i]);
        }
        assert_eq!(unbounded.take(&[0]), Some(vec![0]));
        assert_eq!(unbounded.take(&[0]), None, "taken once");
    }

    #[test]
    fn cipher_names_map_to_rustls_suites() {
        let s = TlsSettings {
            ciphers: "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256".into(),
            ciphersuites: "TLS_CHACHA20_POLY1305_SHA256".into(),
            ..TlsSettings::default()
        };
        let p = provider(&s).unwrap();
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|c| format!("{:?}", c.suite()))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let bad = TlsSettings {
            ciphers: "HIGH:!aNULL".into(),
            ..TlsSettings::default()
        };
        let e = provider(&bad).unwrap_err();
        assert_eq!(e.directive, "tls-ciphers");
        assert!(e.message.contains("'HIGH'"), "{e}");
        let old = TlsSettings {
            protocols: "TLSv1.1 TLSv1.2".into(),
            ..TlsSettings::default()
        };
        assert_eq!(protocols(&old).unwrap_err().directive, "tls-protocols");
    }
}
