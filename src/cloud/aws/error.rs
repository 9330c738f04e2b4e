//! SDK errors → [`CloudError`].
//!
//! An answer from AWS is classified by its error code (see
//! [`CloudError::from_aws_code`]), or by its HTTP status when it carries no
//! code. No answer at all is never the spec's fault: a timeout is transient
//! (the call may have been carried out, so every mutating call is safe to
//! repeat) and a connection that cannot be made means the region's endpoint
//! is unreachable.

use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::cloud::{CloudError, TransientKind};

pub(crate) fn classify<E>(region: &str, error: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let service_error = context.err();
            let message = service_error
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
            match service_error.code() {
                Some(code) => CloudError::from_aws_code(code, message),
                None => by_status(status, message),
            }
        }
        SdkError::ResponseError(context) => by_status(
            context.raw().status().as_u16(),
            format!("unreadable answer: {}", DisplayErrorContext(&error)),
        ),
        SdkError::TimeoutError(_) => CloudError::transient(
            TransientKind::Timeout,
            "RequestTimeout",
            format!("no answer from {region} in time"),
        ),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => CloudError::transient(
            TransientKind::Timeout,
            "RequestTimeout",
            DisplayErrorContext(&error).to_string(),
        ),
        SdkError::DispatchFailure(_) => {
            CloudError::region_unavailable(region, DisplayErrorContext(&error).to_string())
        }
        // The request could not even be built (an invalid parameter the SDK
        // checks itself): sending it again cannot help.
        SdkError::ConstructionFailure(_) => {
            CloudError::refused("InvalidRequest", DisplayErrorContext(&error).to_string())
        }
        _ => CloudError::transient(
            TransientKind::ServerError,
            "Unknown",
            DisplayErrorContext(&error).to_string(),
        ),
    }
}

/// An answer without an error code (a proxy's page, a truncated body).
fn by_status(status: u16, message: String) -> CloudError {
    match status {
        429 => CloudError::transient(
            TransientKind::Throttled,
            "TooManyRequestsException",
            message,
        ),
        408 | 504 => {
            CloudError::transient(TransientKind::Timeout, format!("HTTP{status}"), message)
        }
        _ => CloudError::transient(TransientKind::ServerError, format!("HTTP{status}"), message),
    }
}

/// An answer that should carry the resource but does not.
pub(crate) fn missing(what: &str) -> CloudError {
    CloudError::transient(
        TransientKind::ServerError,
        "IncompleteResponse",
        format!("AWS answered without the {what}"),
    )
}
