//! The player page at `/`: a video list, a timeline of recorded ranges and MSE playback, as static files compiled into the binary.
//!
//! Plain HTML, CSS and JavaScript under `src/playback/page/`, embedded with `include_str!`:
//! no build step and nothing fetched from elsewhere (appliances often have no internet).
//! The page holds no data, so it needs no token; the API calls it makes carry the token it
//! was opened with (`/?access_token=…`). How playback works is described at the top of
//! `page/player.js`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// One file of the page: where it is served, its content type, its bytes.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Everything the page consists of. `index.html` refers to the others by relative URLs.
pub const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("page/index.html") },
    Asset { path: "/index.html", content_type: "text/html; charset=utf-8", body: include_str!("page/index.html") },
    Asset { path: "/player.js", content_type: "text/javascript; charset=utf-8", body: include_str!("page/player.js") },
    Asset { path: "/player.css", content_type: "text/css; charset=utf-8", body: include_str!("page/player.css") },
];

/// What the page may load: its own files and API, and media from MSE object URLs.
/// Inline scripts and styles are refused, so injected markup cannot run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Mounts the page's files (GET and HEAD) on an app, beside the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for asset in ASSETS {
        let serve = move || async move { response(asset) };
        cfg.service(
            web::resource(asset.path).route(web::get().to(serve)).route(web::head().to(serve)).default_service(web::to(|| async {
                HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "GET, HEAD")).finish()
            })),
        );
    }
}

fn response(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(asset.content_type)
        // Revalidate every time: an upgraded appliance serves a new page at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        // The page URL may hold the access token: never send it on.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as web_test, App};

    async fn call(method: actix_web::http::Method, uri: &str) -> (u16, header::HeaderMap, String) {
        let app = web_test::init_service(App::new().configure(configure)).await;
        let res = web_test::call_service(&app, web_test::TestRequest::default().method(method).uri(uri).to_request()).await;
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, String::from_utf8(web_test::read_body(res).await.to_vec()).unwrap())
    }

    #[actix_web::test]
    async fn serves_each_file_with_its_type_and_no_cache() {
        for (uri, ty, marker) in [
            ("/", "text/html; charset=utf-8", "<!doctype html>"),
            ("/?access_token=abc", "text/html; charset=utf-8", "<!doctype html>"),
            ("/index.html", "text/html; charset=utf-8", "<!doctype html>"),
            ("/player.js", "text/javascript; charset=utf-8", "window.vela"),
            ("/player.css", "text/css; charset=utf-8", "#timeline"),
        ] {
            let (status, headers, body) = call(actix_web::http::Method::GET, uri).await;
            assert_eq!(status, 200, "{uri}");
            assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), ty, "{uri}");
            assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-cache", "{uri}");
            assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff", "{uri}");
            assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_some(), "{uri}");
            assert!(body.contains(marker), "{uri}");
        }
        // (actix-web's HTTP/1 encoder leaves out HEAD bodies on the wire.)
        let (status, headers, _) = call(actix_web::http::Method::HEAD, "/player.js").await;
        assert_eq!((status, headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap()), (200, "text/javascript; charset=utf-8"));
        let (status, headers, _) = call(actix_web::http::Method::POST, "/").await;
        assert_eq!(status, 405);
        assert_eq!(headers.get(header::ALLOW).unwrap(), "GET, HEAD");
        assert_eq!(call(actix_web::http::Method::GET, "/nothing.js").await.0, 404);
    }

    /// Values of `attr="…"` attributes in `html`.
    fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!(" {attr}=\"");
        html.match_indices(&needle).map(|(i, _)| &html[i + needle.len()..]).map(|rest| &rest[..rest.find('"').unwrap()]).collect()
    }

    #[test]
    fn the_page_references_only_its_own_files() {
        let index = ASSETS[0].body;
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        let mut refs = attribute_values(index, "src");
        refs.extend(attribute_values(index, "href"));
        assert!(!refs.is_empty());
        for r in &refs {
            assert!(!r.contains(':') && !r.starts_with('/') && !r.starts_with('.'), "{r}: not a plain relative URL");
            assert!(served.contains(&format!("/{r}").as_str()), "{r}: not served by the page");
        }
        assert!(refs.contains(&"player.js") && refs.contains(&"player.css"));
        // No inline code or styles (the CSP refuses them), no other origins anywhere.
        assert_eq!(index.matches("<script").count(), 1);
        assert!(!index.contains("<style") && !index.contains(" style="));
        let handlers = index.match_indices(" on").filter(|(i, _)| {
            let rest = &index[i + 3..];
            let name_len = rest.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(rest.len());
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "inline event handlers");
        for asset in ASSETS {
            for scheme in ["http:", "https:", "ws:", "wss:", "//cdn", "@import"] {
                assert!(!asset.body.contains(scheme), "{}: mentions {scheme}", asset.path);
            }
        }
        // The API is reached relative to the page, so a proxy may mount it under a prefix.
        let js = ASSETS.iter().find(|a| a.path == "/player.js").unwrap().body;
        assert!(js.contains("`api/videos/") && !js.contains("'/api/"), "API URLs must be relative");
    }

    #[test]
    fn the_page_has_the_elements_tests_and_scripts_rely_on() {
        let index = ASSETS[0].body;
        let js = ASSETS.iter().find(|a| a.path == "/player.js").unwrap().body;
        let ids = attribute_values(index, "id");
        let wanted =
            ["videos", "timeline", "video", "live", "download", "play", "zoom-in", "zoom-out", "status", "screen", "overlay", "boxes"];
        for id in wanted {
            assert!(ids.contains(&id), "#{id} missing");
            assert!(js.contains(&format!("$('{id}')")), "#{id} unused by player.js");
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate ids");
    }
}
