//! The fleet behind `--metrics-url`: every address its host resolves to (a
//! headless Service resolves to every ready pod), each pod's CPU seconds, and
//! the replicas and cores the time series shows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use tokio::time::Instant;

use super::client::HttpClient;
use super::report;

async fn scrape_cpu(client: &HttpClient, url: &str) -> Result<f64, String> {
    let request = Request::get(url).body(Full::new(Bytes::new())).map_err(|e| format!("--metrics-url: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| format!("{url} did not answer"))?
        .map_err(|e| format!("cannot read {url}: {e}"))?;
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    report::cpu_seconds(&String::from_utf8_lossy(&body))
        .ok_or_else(|| format!("{url} has no process_cpu_seconds_total"))
}

/// Every pod behind `url`: its host resolved to all its addresses (a headless
/// Service resolves to every ready pod), each scraped; CPU seconds by address.
pub(super) async fn scrape_fleet(
    client: &HttpClient,
    url: &str,
) -> Result<BTreeMap<std::net::SocketAddr, f64>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("--metrics-url {url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("--metrics-url {url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/metrics", |p| p.as_str());
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("--metrics-url: cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("--metrics-url: {host} resolves to no address"));
    }
    let mut fleet = BTreeMap::new();
    for addr in addrs {
        fleet.insert(addr, scrape_cpu(client, &format!("http://{addr}{path}")).await?);
    }
    Ok(fleet)
}

/// CPU spent by the fleet between two scrapes: each pod's increase; a pod
/// first seen at the end started during the test, so all of its CPU counts.
/// Pods gone by the end are reported apart (their CPU after the start is lost).
pub(super) fn fleet_cpu(
    before: &BTreeMap<std::net::SocketAddr, f64>,
    after: &BTreeMap<std::net::SocketAddr, f64>,
) -> (f64, usize) {
    let cpu = after.iter().map(|(addr, a)| a - before.get(addr).copied().unwrap_or(0.0)).sum();
    let gone = before.keys().filter(|k| !after.contains_key(*k)).count();
    (cpu, gone)
}

/// What `--metrics-url` showed last: pods that answered and the cores they
/// used since the scrape before.
#[derive(Default, Clone, Copy)]
pub(super) struct Fleet {
    pub(super) replicas: Option<usize>,
    pub(super) cores: Option<f64>,
}

/// Scrapes the fleet every two seconds for the time series.
pub(super) async fn watch_fleet(client: HttpClient, url: String, fleet: Arc<Mutex<Fleet>>) {
    let mut last: Option<(Instant, BTreeMap<std::net::SocketAddr, f64>)> = None;
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        let now = Instant::now();
        let seen = scrape_fleet(&client, &url).await.ok();
        let cores = match (&last, &seen) {
            (Some((then, before)), Some(after)) => {
                // Pods present at both scrapes; a new pod's CPU so far is not this interval's.
                let cpu: f64 = after.iter().filter_map(|(a, v)| before.get(a).map(|b| v - b)).sum();
                Some((cpu / (now - *then).as_secs_f64() * 1000.0).round() / 1000.0)
            }
            _ => None,
        };
        *fleet.lock().expect("fleet lock") = Fleet { replicas: seen.as_ref().map(BTreeMap::len), cores };
        if let Some(seen) = seen {
            last = Some((now, seen));
        }
    }
}
