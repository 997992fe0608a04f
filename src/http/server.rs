//! The accept loop in front of the router. The pod faces the internet through a
//! layer-4 load balancer that bounds nothing, so the bounds are here:
//!
//! - at most `MAX_CONNECTIONS` open connections; past it new ones wait in the
//!   kernel's backlog instead of costing memory;
//! - a request head must arrive within `HEADER_READ_TIMEOUT` (hyper's timer:
//!   slowloris);
//! - a connection that moves no byte either way for `IDLE_TIMEOUT` is asked to
//!   finish (an idle keep-alive closes at once) and, if it stays silent for
//!   another `IDLE_TIMEOUT` (a client that stopped reading), is dropped;
//! - a request body must arrive within `BODY_READ_TIMEOUT` ([`body_deadline`]);
//! - on shutdown every connection is asked to finish, and whatever is still
//!   open after `drain_limit` is dropped, so the process always exits.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Bytes hyper may buffer per connection, reading or writing.
const MAX_BUFFERED: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Once the drain starts, how long connections may take to finish.
    pub drain_limit: Duration,
}

/// Serves `router` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    open: prometheus::IntGauge,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (finish_tx, finish_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (router, finish, open) = (router.clone(), finish_rx.clone(), open.clone());
        connections.spawn(async move {
            open.inc();
            connection(tcp, peer, router, limits, finish).await;
            open.dec();
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = finish_tx.send(true);
    let drained =
        tokio::time::timeout(limits.drain_limit, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "drain limit reached: closing the connections still open");
        connections.abort_all();
    }
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut finish: watch::Receiver<bool>,
) {
    // hyper sets up ~16 KiB of buffers as soon as it serves a connection; one
    // that sends nothing (thousands of bare connects) costs only its task and
    // socket until its first byte, and is closed at the header or idle timeout,
    // whichever comes first. (`peek`, not `readable`: tokio may report a new
    // socket readable before any byte has come.)
    let silent_for = limits.header_read_timeout.min(limits.idle_timeout);
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(silent_for, tcp.peek(&mut first)) => {
            if !matches!(peeked, Ok(Ok(n)) if n > 0) {
                return;
            }
        }
        _ = finish.wait_for(|f| *f) => return,
    }
    // Boxed: a future is as large as its largest state, and hyper's connection
    // is large; unboxed, every silent connection's task would be that size.
    Box::pin(serve_http(tcp, peer, router, limits, finish)).await;
}

/// Serves HTTP/1.1 on a connection that has sent its first byte.
async fn serve_http(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut finish: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked { inner: tcp, activity: activity.clone() });
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // What hyper queues for a slow reader before it stops polling the
        // response body (its default is ~400 KiB).
        .max_buf_size(MAX_BUFFERED);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut finishing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = finish.wait_for(|f| *f), if !finishing => {
                conn.as_mut().graceful_shutdown();
                finishing = true;
            }
            _ = activity.silent_for(limits.idle_timeout) => {
                if finishing {
                    // Asked to finish and still silent: the client stopped
                    // reading (or never sends). Drop it.
                    return;
                }
                conn.as_mut().graceful_shutdown();
                finishing = true;
            }
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { origin: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `quiet`.
    async fn silent_for(&self, quiet: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Relaxed);
            tokio::time::sleep_until(self.origin + Duration::from_millis(last) + quiet).await;
            if self.last_ms.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}

/// A socket that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a request body gives when it does not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within BODY_READ_TIMEOUT")]
pub struct BodyTimeout;

/// Middleware: the whole request body must arrive within `limit` of the head,
/// however it trickles (a per-read timeout would let a byte a second through).
pub async fn body_deadline(limit: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(Deadline { inner: body, sleep: Box::pin(tokio::time::sleep(limit)) });
    next.run(Request::from_parts(parts, body)).await
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error (a body or extractor rejection) was caused by [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}
