//! API errors: every failure is a JSON body `{"message": …}` with a fitting status code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::content::CidError;
use crate::fetch::FetchError;
use crate::store::StoreError;

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub message: String,
}

/// An error answered by a handler.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A disabled feature or a node still starting: the caller is told; not the operator's problem.
            tracing::debug!(target: "vellum::api", status = %self.status, message = %self.message, "request refused");
        } else if self.status.is_server_error() {
            tracing::warn!(target: "vellum::api", status = %self.status, message = %self.message, "request failed");
        }
        (self.status, Json(ErrorBody { message: self.message })).into_response()
    }
}

impl From<CidError> for ApiError {
    fn from(e: CidError) -> Self {
        Self::bad_request(format!("invalid CID: {e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("not found"),
            StoreError::QuotaExceeded { .. } | StoreError::NoSpace { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::NotFound(cid) => Self::not_found(format!("{cid} was not found locally or in the network")),
            FetchError::Store(s) => s.into(),
            other => Self::new(StatusCode::BAD_GATEWAY, other.to_string()),
        }
    }
}
