//! Counts every AWS request attempt by service, operation, region and
//! outcome (`shopfleet_aws_requests_total`), so that throttling shows up
//! in Prometheus before it shows up as a slow failover.

use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::cloud::CloudError;
use crate::telemetry::Metrics;

/// The SDK interceptor of one region's clients.
pub(crate) struct CountRequests {
    pub metrics: Arc<Metrics>,
    pub region: String,
}

impl std::fmt::Debug for CountRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountRequests")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "shopfleet::CountRequests"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown", "unknown"), |m| (m.service(), m.name()));
        let response = context.response();
        // CloudWatch's CBOR protocol names the query error in a header.
        let query_error = response.and_then(|r| r.headers().get("x-amzn-query-error"));
        let outcome = request_outcome(
            response.map(|r| r.status().as_u16()),
            [
                response.and_then(|r| r.body().bytes()),
                query_error.map(str::as_bytes),
            ],
        );
        self.metrics
            .record_aws_request(service, operation, &self.region, outcome);
        Ok(())
    }
}

/// `ok` for a 2xx answer, `throttled` when AWS said to slow down (HTTP 429
/// or one of the throttling error codes in the body or the query-error
/// header, whatever the protocol), `error` for every other answer and for
/// no answer at all.
pub fn request_outcome(status: Option<u16>, texts: [Option<&[u8]>; 2]) -> &'static str {
    match status {
        None => "error",
        Some(200..=299) => "ok",
        Some(429) => "throttled",
        Some(_) => {
            let throttled = texts.iter().flatten().any(|text| {
                CloudError::THROTTLING_CODES
                    .iter()
                    .any(|code| contains_word(text, code.as_bytes()))
            });
            if throttled { "throttled" } else { "error" }
        }
    }
}

/// `word` in `text`, not as part of a longer identifier (`Throttling` is
/// not found in `ThrottlingException`, which is matched on its own).
fn contains_word(text: &[u8], word: &[u8]) -> bool {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.windows(word.len()).enumerate().any(|(at, window)| {
        window == word
            && (at == 0 || !is_ident(text[at - 1]))
            && text
                .get(at + word.len())
                .is_none_or(|&after| !is_ident(after))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_answer_is_ok_and_no_answer_is_an_error() {
        assert_eq!(request_outcome(Some(200), [None, None]), "ok");
        assert_eq!(request_outcome(None, [None, None]), "error");
    }

    #[test]
    fn throttling_is_recognised_in_query_json_and_cbor_answers() {
        let query = b"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(request_outcome(Some(400), [Some(query), None]), "throttled");
        let json =
            br#"{"__type":"com.amazonaws.cloudwatch#ThrottlingException","message":"slow down"}"#;
        assert_eq!(request_outcome(Some(400), [Some(json), None]), "throttled");
        assert_eq!(request_outcome(Some(429), [Some(b""), None]), "throttled");
        let cbor_header = b"Throttling;Sender";
        assert_eq!(
            request_outcome(Some(400), [Some(b"\xa2LimitExceeded"), Some(cbor_header)]),
            "throttled"
        );
    }

    #[test]
    fn other_errors_are_errors_even_when_their_text_mentions_throttling_in_a_longer_word() {
        let body = b"<Code>DBClusterNotFoundFault</Code><Message>NotThrottlingRelated</Message>";
        assert_eq!(request_outcome(Some(404), [Some(body), None]), "error");
        assert_eq!(request_outcome(Some(500), [None, None]), "error");
    }
}
