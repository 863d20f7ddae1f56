//! The web console at `/ui/` on the admin listener: its files (the console's
//! own and the vendored Preact and htm, `gateway/console/`) compiled into the
//! binary, served with a strict Content-Security-Policy. The files carry no
//! secret; every call they make to `/admin/*` sends the admin token the
//! operator signed in with (kept in `sessionStorage`, no cookie).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

/// Where the console lives.
pub const PREFIX: &str = "/ui/";

/// Scripts, styles and calls from the console's own origin only; no inline
/// script or style, no frames, no forms posting elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The console's files: name under `/ui/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/api.js"),
    ),
    (
        "tenants.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/tenants.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/chart.js"),
    ),
    (
        "quotas.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/quotas.js"),
    ),
    (
        "usage.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/usage.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
    (
        "vendor/preact.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/preact.mjs"),
    ),
    (
        "vendor/hooks.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/hooks.mjs"),
    ),
    (
        "vendor/htm.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/htm.mjs"),
    ),
];

/// The answer to `method path` under the console (None: not the console's).
pub fn serve(method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
    if path == "/ui" {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
        return Some(r);
    }
    let name = path.strip_prefix(PREFIX)?;
    if method != Method::GET && method != Method::HEAD {
        return Some(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console's files are read with GET",
        ));
    }
    let name = if name.is_empty() { "index.html" } else { name };
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Some(plain(StatusCode::NOT_FOUND, "no such console file"));
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    secure(h);
    // (the files change with the binary: revalidate, never serve a stale one)
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

/// The headers every console answer carries.
fn secure(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

use http::HeaderName;

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_served_with_a_strict_policy() {
        let r = serve(&Method::GET, "/ui/").unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert!(h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let r = serve(&Method::GET, "/ui/vendor/preact.mjs").unwrap();
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert_eq!(
            serve(&Method::GET, "/ui/../Cargo.toml").unwrap().status(),
            404
        );
        assert_eq!(serve(&Method::POST, "/ui/app.js").unwrap().status(), 405);
        assert_eq!(serve(&Method::GET, "/ui").unwrap().status(), 308);
        assert!(serve(&Method::GET, "/admin/health").is_none());
    }

    #[test]
    fn every_file_the_console_imports_is_served() {
        // a module the console imports but the binary lacks is a blank page
        for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .rsplit_once("from \"./")
                    .map(|(_, t)| t.trim_end_matches("\";"));
                let target = target.unwrap_or_else(|| panic!("{name}: {line}"));
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, not served"
                );
            }
        }
    }

    #[test]
    fn the_vendored_files_are_the_ones_recorded() {
        use sha2::{Digest, Sha256};
        let sums = include_str!("../../console/vendor/SHA256SUMS");
        for line in sums.lines() {
            let (sum, name) = line.split_once("  ").unwrap();
            let (_, _, body) = FILES
                .iter()
                .find(|(n, _, _)| *n == format!("vendor/{name}"))
                .unwrap();
            let got: String = Sha256::digest(body)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, sum, "{name}: run scripts/vendor-console.sh");
        }
    }
}
