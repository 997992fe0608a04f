//! The load generator's HTTP client: keep-alive connections over http:// or
//! https:// (rustls, the system's roots or `--ca-cert`), each connection
//! carrying a count of the requests it has served, so that
//! `--max-requests-per-connection` can retire it and let the balancer pick
//! again (pods added during a run get traffic only from new connections).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{CaptureConnection, Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub type HttpClient = Client<Connector, Full<Bytes>>;

/// A connection's request count, found in its metadata.
#[derive(Clone, Debug)]
struct Uses(Arc<AtomicUsize>);

/// A connection with its request count.
pub struct Counted<T> {
    io: T,
    uses: Arc<AtomicUsize>,
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(Uses(self.uses.clone()))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens http:// and https:// connections, each counted.
#[derive(Clone)]
pub struct Connector(HttpsConnector<HttpConnector>);

impl tower::Service<Uri> for Connector {
    type Response = Counted<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(Counted { io: connecting.await?, uses: Arc::default() }) })
    }
}

/// The client: TLS roots from the system, or only those in `ca_cert`.
pub fn build(ca_cert: Option<&Path>, max_idle: usize) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_cert {
        None => builder.with_native_roots().map_err(|e| format!("cannot read the system's certificates: {e}"))?,
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca-cert {}: no certificate in it", path.display()));
            }
            let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
            builder.with_tls_config(config)
        }
    };
    let connector = Connector(builder.https_or_http().enable_http1().wrap_connector(http));
    Ok(Client::builder(TokioExecutor::new()).pool_max_idle_per_host(max_idle).build(connector))
}

/// Counts a request on the connection that carried it, and retires the
/// connection (not reused once this response is read) at `max` requests.
pub fn count_use(captured: &CaptureConnection, max: usize) {
    if max == 0 {
        return;
    }
    if let Some(connected) = captured.connection_metadata().as_ref() {
        let mut extras = axum::http::Extensions::new();
        connected.get_extras(&mut extras);
        if let Some(Uses(n)) = extras.get::<Uses>()
            && n.fetch_add(1, Ordering::Relaxed) + 1 >= max
        {
            connected.poison();
        }
    }
}
