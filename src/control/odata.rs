//! Method responses and the OData error bodies of SPEC §3.2.

use serde_json::{json, Value};

/// What a direct method answers: a status code and a JSON payload (or none).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub payload: Option<Value>,
}

impl Response {
    pub fn ok(payload: Value) -> Self {
        Response { status: 200, payload: Some(payload) }
    }

    pub fn created(payload: Value) -> Self {
        Response { status: 201, payload: Some(payload) }
    }

    /// A Set's answer: 201 when the entity is new, 200 when it replaced one.
    pub fn upserted(existed: bool, payload: Value) -> Self {
        Response { status: if existed { 200 } else { 201 }, payload: Some(payload) }
    }

    pub fn empty(status: u16) -> Self {
        Response { status, payload: None }
    }

    /// An error with one detail.
    pub fn error(status: u16, top: Top, detail_code: &str, target: &str, message: impl Into<String>) -> Self {
        let (code, msg) = top.code_message();
        Response {
            status,
            payload: Some(json!({ "error": { "code": code, "message": msg, "details": [
                { "code": detail_code, "target": target, "message": message.into() }
            ] } })),
        }
    }

    /// A bad request from the compiler's full error list.
    pub fn invalid(body: Value) -> Self {
        Response { status: 400, payload: Some(body) }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Top-level error codes (SPEC §3.2).
#[derive(Clone, Copy, Debug)]
pub enum Top {
    BadRequest,
    InvalidResource,
    NotFound,
    Conflict,
    NotImplemented,
    InternalServerError,
}

impl Top {
    fn code_message(&self) -> (&'static str, &'static str) {
        match self {
            Top::BadRequest => ("BadRequest", "The request is invalid."),
            Top::InvalidResource => ("InvalidResource", "The resource format is invalid."),
            Top::NotFound => ("NotFound", "The resource was not found."),
            Top::Conflict => ("Conflict", "The operation conflicts with the current state."),
            Top::NotImplemented => ("NotImplemented", "The method is not implemented."),
            Top::InternalServerError => ("InternalServerError", "Internal server error."),
        }
    }
}
