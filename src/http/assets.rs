//! CSS, JavaScript and icons, embedded in the binary so the UI makes no external
//! request (air-gapped clusters work). Served gzipped when the client accepts it,
//! with year-long caching: page URLs carry a content hash (`?v=`).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../static/app.css") },
    // The scripts: helpers every page uses, then one per page.
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/common.js"),
    },
    Asset {
        name: "translate.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/translate.js"),
    },
    Asset {
        name: "editor.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/editor.js"),
    },
    Asset {
        name: "batch.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/batch.js"),
    },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("../../static/favicon.svg") },
    // The demo set: 100 reaction mixtures from patents and their recorded
    // products, one per line (the batch page's "try with sample data").
    Asset {
        name: "sample-reactions.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../static/sample-reactions.txt"),
    },
    Asset {
        name: "sample-products.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../static/sample-products.txt"),
    },
];

/// Gzipped bodies, made once on first use.
fn gzipped() -> &'static [Vec<u8>] {
    static GZ: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    GZ.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                gz.write_all(a.body).expect("writing to a Vec cannot fail");
                gz.finish().expect("writing to a Vec cannot fail")
            })
            .collect()
    })
}

/// A short hash of all assets, for cache-busting URLs.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let h = ASSETS
            .iter()
            .flat_map(|a| a.body.iter())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        format!("{:010x}", h & 0xff_ffff_ffff)
    })
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return super::error::ApiError::not_found("no such file").into_response();
    };
    let asset = &ASSETS[i];
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if accepts_gzip {
        let mut r = gzipped()[i].clone().into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Vendored browser code (`static/vendor`: the molecule editor), each file's
/// path under it and its body gzipped at build time (`build.rs`).
static VENDOR: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/vendor.rs"));

/// `GET /static/vendor/{path}`: a vendored file, gzipped when the client
/// accepts it (browsers do), else unzipped here. GWT's compiled files carry
/// their content hash in their names (`.cache.`) and are kept for a year; the
/// loader (`jsme.nocache.js`) is asked for again each time, as GWT requires.
pub async fn vendor(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some((name, gz)) = VENDOR.iter().find(|(name, _)| *name == path) else {
        return super::error::ApiError::not_found("no such file").into_response();
    };
    let content_type = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if accepts_gzip {
        let mut r = gz.into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        use std::io::Read;
        let mut body = Vec::new();
        if flate2::read::GzDecoder::new(*gz).read_to_end(&mut body).is_err() {
            return super::error::ApiError::internal("a vendored file could not be read").into_response();
        }
        body.into_response()
    };
    let cache = if name.contains(".cache.") {
        "public, max-age=31536000, immutable"
    } else if name.ends_with(".nocache.js") {
        "no-cache"
    } else {
        "public, max-age=86400"
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}
