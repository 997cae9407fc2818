//! Errors of the playback API, each with its HTTP status and a JSON body `{"error":{"code","message"}}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use thiserror::Error;

use crate::recording::StoreError;

use super::time::TimeError;

/// Everything a playback request can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    Time(#[from] TimeError),
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName { what: &'static str, value: String, why: &'static str },
    #[error("invalid {param} {value:?}: {why}")]
    InvalidParameter { param: &'static str, value: String, why: &'static str },
    #[error("no video named {0:?}")]
    UnknownVideo(String),
    #[error("nothing of video {video:?} is recorded {when}")]
    NoRecording { video: String, when: String },
    #[error("video {video:?} has no segment file {file:?}")]
    UnknownSegment { video: String, file: String },
    #[error("no such resource: {0}")]
    NoRoute(String),
    #[error("method {0} is not allowed here (GET, and HEAD for media)")]
    MethodNotAllowed(String),
    #[error("the requested range starts beyond the {len} bytes of this resource")]
    RangeNotSatisfiable { len: u64 },
    #[error("this API needs a bearer token: send 'Authorization: Bearer <token>' (or ?access_token=<token>)")]
    Unauthorized,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Media(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable, machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Time(_) => "InvalidTime",
            ApiError::InvalidName { .. } => "InvalidName",
            ApiError::InvalidParameter { .. } => "InvalidParameter",
            ApiError::UnknownVideo(_) => "VideoNotFound",
            ApiError::NoRecording { .. } => "NoRecording",
            ApiError::UnknownSegment { .. } => "SegmentNotFound",
            ApiError::NoRoute(_) => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::RangeNotSatisfiable { .. } => "RangeNotSatisfiable",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Store(_) => "StoreError",
            ApiError::Media(_) => "MediaError",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The request part at fault (a query parameter or a path segment), when there is one.
    pub fn target(&self) -> Option<&'static str> {
        match self {
            ApiError::Time(e) => Some(e.param()),
            ApiError::InvalidName { what, .. } => Some(what),
            ApiError::InvalidParameter { param, .. } => Some(param),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Time(_) | ApiError::InvalidName { .. } | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownVideo(_) | ApiError::NoRecording { .. } | ApiError::UnknownSegment { .. } | ApiError::NoRoute(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Store(_) | ApiError::Media(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "playback: {self}");
        }
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Some(target) = self.target() {
            error["target"] = target.into();
        }
        let mut res = HttpResponse::build(status);
        res.content_type("application/json").insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            ApiError::RangeNotSatisfiable { len } => {
                res.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
            }
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"vela\""));
            }
            ApiError::MethodNotAllowed(_) => {
                res.insert_header((header::ALLOW, "GET, HEAD"));
            }
            _ => {}
        }
        res.body(serde_json::json!({ "error": error }).to_string())
    }
}

/// Checks a video or file name taken from a request path. Names are only ever looked up in
/// the catalog, never joined to a path, so this is defence in depth and a clear 400 for
/// what cannot be a name.
pub fn check_name<'a>(what: &'static str, value: &'a str) -> Result<&'a str, ApiError> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value.len() > 255 {
        "it is longer than 255 bytes"
    } else if value.contains(['/', '\\']) {
        "it contains a path separator"
    } else if value.contains("..") {
        "it contains '..'"
    } else if value.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(value);
    };
    Err(ApiError::InvalidName { what, value: value.chars().take(64).collect(), why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(e: ApiError) -> (u16, serde_json::Value) {
        let res = e.error_response();
        let status = res.status().as_u16();
        let bytes = res.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn errors_are_json_with_status_code_and_target() {
        let (status, v) = body(ApiError::Time(TimeError::Missing { param: "end" }));
        assert_eq!(status, 400);
        assert_eq!(v["error"]["code"], "InvalidTime");
        assert_eq!(v["error"]["target"], "end");
        assert!(v["error"]["message"].as_str().unwrap().contains("'end' is missing"));
        assert_eq!(body(ApiError::UnknownVideo("x".into())).0, 404);
        assert_eq!(body(ApiError::RangeNotSatisfiable { len: 5 }).0, 416);
        assert_eq!(ApiError::RangeNotSatisfiable { len: 5 }.error_response().headers().get("content-range").unwrap(), "bytes */5");
        let unauth = ApiError::Unauthorized.error_response();
        assert_eq!(unauth.status(), 401);
        assert!(unauth.headers().contains_key("www-authenticate"));
        assert_eq!(body(ApiError::Store(StoreError::Index("boom".into()))).1["error"]["code"], "StoreError");
    }

    #[test]
    fn names_that_could_address_other_files_are_refused() {
        for ok in ["cam-1", "lobby.front", "Café 2", "a.b_c~d"] {
            assert_eq!(check_name("video", ok).unwrap(), ok);
        }
        for bad in ["", "..", "../etc", "a/b", "a\\b", "x..y", "nul\0", "line\nbreak", &"x".repeat(256)] {
            let e = check_name("video", bad).unwrap_err();
            assert_eq!(e.code(), "InvalidName", "{bad:?}");
            assert_eq!(e.target(), Some("video"));
        }
    }
}
