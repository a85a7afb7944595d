//! An https server on 127.0.0.1 that serves client metadata documents (and whatever else a test needs: a JWK
//! set, an oversize body, a slow answer, a redirect), with a certificate from a CA generated in the test.
//!
//! The fetcher under test trusts that CA only because the test configuration says so
//! (`ClientMetadataDocuments::extra_root_certificates` with `builtin_roots = false`). The server speaks just
//! enough HTTP/1.1 for one request per connection, answers what the test set for the path, and counts the
//! requests per path, so tests can tell a cache hit from a fetch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

#[allow(clippy::expect_used)]
impl TestCa {
    /// A fresh CA (ECDSA P-256).
    ///
    /// # Panics
    /// If key generation fails.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "oauth-core test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its PKCS#8 key, both PEM.
    ///
    /// # Panics
    /// If a name is invalid or signing fails.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// What the server answers on one path.
#[derive(Clone, Debug)]
pub struct Route {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    content_length: bool,
}

impl Route {
    /// `200` with `Content-Type: application/json` and this body.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Route {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
            content_length: true,
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Route {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
            delay: Duration::ZERO,
            content_length: true,
        }
    }

    /// Replaces the status.
    #[must_use]
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds (or, for `Content-Type`, replaces) a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits this long before answering.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends no `Content-Length`: the body ends when the connection closes.
    #[must_use]
    pub fn without_length(mut self) -> Self {
        self.content_length = false;
        self
    }
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;
type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// The https document server; stopped when dropped.
pub struct DocumentServer {
    port: u16,
    routes: Routes,
    hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DocumentServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::expect_used)]
impl DocumentServer {
    /// Starts on a free 127.0.0.1 port with a certificate from `ca` for `names`.
    ///
    /// # Panics
    /// If the port cannot be bound or the certificate not loaded.
    pub async fn start(ca: &TestCa, names: &[&str]) -> Self {
        let (cert, key) = ca.issue(names);
        let identity =
            tokio_native_tls::native_tls::Identity::from_pkcs8(cert.as_bytes(), key.as_bytes())
                .expect("server identity");
        let acceptor = tokio_native_tls::TlsAcceptor::from(
            tokio_native_tls::native_tls::TlsAcceptor::new(identity).expect("TLS acceptor"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let routes = Routes::default();
        let hits = Hits::default();
        let (r, h) = (Arc::clone(&routes), Arc::clone(&hits));
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, r, h) = (acceptor.clone(), Arc::clone(&r), Arc::clone(&h));
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, r, h).await;
                    }
                });
            }
        });
        DocumentServer {
            port,
            routes,
            hits,
            task,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets what `path` answers (unknown paths answer 404).
    pub fn set(&self, path: &str, route: Route) {
        self.routes.lock().insert(path.to_owned(), route);
    }

    /// How many requests `path` received.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().get(path).copied().unwrap_or(0)
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    routes: Routes,
    hits: Hits,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    *hits.lock().entry(path.clone()).or_default() += 1;
    let route = routes.lock().get(&path).cloned();
    let route = route.unwrap_or_else(|| Route::json("{}").status(404));
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let mut out = format!("HTTP/1.1 {} Test\r\nConnection: close\r\n", route.status);
    for (name, value) in &route.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if route.content_length {
        out.push_str(&format!("Content-Length: {}\r\n", route.body.len()));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.write_all(&route.body).await;
    let _ = stream.shutdown().await;
}
