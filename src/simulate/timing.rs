//! A check on the clock itself: how much virtual time passed while a
//! Kubernetes request was in flight.
//!
//! On paused Tokio time the runtime moves its clock only when every task
//! waits. A request to the in-process API server is answered over loopback
//! inside the same runtime, so the answer is normally ready before the
//! runtime looks for a timer; were the kernel to deliver it late, the
//! clock would jump to the next timer with the request still in flight and
//! the figures would be off. Every run measures it and says so.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tower::{Layer, Service};

use super::Pace;
use super::record::serialize_seconds;

/// What the clock check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockCheck {
    /// `instant` or `paced`.
    pub mode: &'static str,
    /// Virtual seconds per second of the runtime's clock.
    pub speed: u32,
    /// Kubernetes requests timed (watches excluded: they stay open).
    pub requests: u64,
    /// The most virtual time any of them took: 0 on an exact run; on a
    /// paced run, about how precise the figures are.
    #[serde(rename = "slowestRequestSeconds", serialize_with = "serialize_seconds")]
    pub slowest_request: Duration,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    slowest: Duration,
}

/// A tower layer for kube clients that times every non-watch request on
/// the runtime's clock.
#[derive(Clone, Default)]
pub(super) struct RequestTimer {
    stats: Arc<Mutex<Stats>>,
}

impl RequestTimer {
    pub(super) fn check(&self, pace: Pace) -> ClockCheck {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let speed = pace.speed();
        ClockCheck {
            mode: match pace {
                Pace::Instant => "instant",
                Pace::Speed(_) => "paced",
            },
            speed,
            requests: stats.requests,
            slowest_request: stats.slowest.saturating_mul(speed),
        }
    }
}

impl<S> Layer<S> for RequestTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            stats: self.stats.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct Timed<S> {
    inner: S,
    stats: Arc<Mutex<Stats>>,
}

fn is_watch<B>(request: &http::Request<B>) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, B> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let watch = is_watch(&request);
        let started = tokio::time::Instant::now();
        let answer = self.inner.call(request);
        let stats = self.stats.clone();
        Box::pin(async move {
            let result = answer.await;
            if !watch {
                let took = started.elapsed();
                let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.requests += 1;
                stats.slowest = stats.slowest.max(took);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_apart_from_other_requests() {
        let watch =
            http::Request::get("/api/v1/namespaces/shop/events?watch=true&timeoutSeconds=290")
                .body(())
                .unwrap();
        let list = http::Request::get("/api/v1/namespaces/shop/events?limit=500")
            .body(())
            .unwrap();
        assert!(is_watch(&watch));
        assert!(!is_watch(&list));
    }

    /// A service that takes two seconds to answer.
    #[derive(Clone)]
    struct Slow;

    impl Service<http::Request<()>> for Slow {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_spans_a_timer_is_reported_in_virtual_time() {
        let timer = RequestTimer::default();
        let mut service = timer.layer(Slow);
        service
            .call(http::Request::get("/api/v1/pods").body(()).unwrap())
            .await
            .unwrap();
        let check = timer.check(Pace::Speed(10));
        assert_eq!(check.requests, 1);
        assert_eq!(check.slowest_request, Duration::from_secs(20));
    }
}
