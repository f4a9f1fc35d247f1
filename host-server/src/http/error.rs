//! The dashboard's error answer: a status and `{"error": "..."}` with a
//! message a person can act on, plus fields that say more (a record's state).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::repair::RepairError;
use crate::store::StoreError;

/// An error answer of the dashboard's API.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What happened and what to do.
    pub message: String,
    /// More fields for scripts (merged into the JSON object).
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a field to the JSON answer.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `500`: the server could not do its part; the message says what broke.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let status = match error {
            StoreError::NoSuchRecord(_)
            | StoreError::NoSuchDevice(_)
            | StoreError::NothingToRestore { .. }
            | StoreError::BeyondVersions { .. } => StatusCode::NOT_FOUND,
            StoreError::NotOwner { .. } => StatusCode::FORBIDDEN,
            StoreError::ContentChanged(_)
            | StoreError::DeviceExists(_)
            | StoreError::NameTaken { .. } => StatusCode::CONFLICT,
            StoreError::Interrupted(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<RepairError> for ApiError {
    fn from(error: RepairError) -> ApiError {
        match error {
            RepairError::Busy(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            RepairError::Store(error) => error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), json!(self.message));
        (self.status, Json(Value::Object(body))).into_response()
    }
}
