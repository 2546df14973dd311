//! What a finished request is counted under and where: the metrics, the dashboard's tallies, the
//! status page's minute counters and the access log line. The request layer (`middleware`) hands
//! each answer over; nothing here changes a response.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use velro_core::service::Surface;

use crate::extract::CallerSlot;
use crate::monitor::RequestSeen;
use crate::AppState;

/// What one kind of request (method, route, status) is counted under: its metric handles, its
/// dashboard row and its status-page surface. Made on the first such request and kept by the
/// route's layer: building them per request (three label strings, a registry lookup, a
/// `format!`) was most of what counting cost (BENCHMARKS.md).
pub(crate) struct Tally {
    method: Method,
    route: Option<MatchedPath>,
    status: StatusCode,
    requests: Counter,
    duration: Histogram,
    /// `METHOD route`, the dashboard's row.
    key: String,
    surface: Option<Surface>,
}

/// More kinds than one route ever sees (a few methods times a few statuses); past it a kind is
/// counted without being kept, so nothing grows without bound.
const TALLIES_KEPT: usize = 64;

impl Tally {
    fn new(method: &Method, route: Option<&MatchedPath>, status: StatusCode) -> Self {
        let route_name = route.map_or(UNMATCHED, MatchedPath::as_str);
        let method_name = method_label(method);
        let labels = [
            ("method", method_name.to_string()),
            ("route", route_name.to_string()),
            ("status", status.as_u16().to_string()),
        ];
        Self {
            method: method.clone(),
            route: route.cloned(),
            status,
            requests: metrics::counter!("velro_http_requests_total", &labels),
            duration: metrics::histogram!("velro_http_request_duration_seconds", &labels),
            key: format!("{method_name} {route_name}"),
            surface: crate::routes::status::surface(route_name),
        }
    }

    fn is_for(&self, method: &Method, route: Option<&MatchedPath>, status: StatusCode) -> bool {
        self.status == status
            && self.method == method
            && self.route.as_ref().map(MatchedPath::as_str) == route.map(MatchedPath::as_str)
    }
}

/// The tallies of one route's layer.
#[derive(Default)]
pub(crate) struct Tallies(RwLock<Vec<Arc<Tally>>>);

impl Tallies {
    pub(crate) fn get(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
    ) -> Arc<Tally> {
        let found = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|tally| tally.is_for(method, route, status))
            .cloned();
        found.unwrap_or_else(|| {
            let mut kept = self.0.write().unwrap_or_else(PoisonError::into_inner);
            // Another request may have made it meanwhile.
            if let Some(tally) = kept
                .iter()
                .find(|tally| tally.is_for(method, route, status))
            {
                return Arc::clone(tally);
            }
            let tally = Arc::new(Tally::new(method, route, status));
            if kept.len() < TALLIES_KEPT {
                kept.push(Arc::clone(&tally));
            }
            tally
        })
    }
}

/// The method as metrics and the dashboard name it: the standard ones, and `other` for any
/// extension method a client makes up, so that clients cannot add series without end.
fn method_label(method: &Method) -> &str {
    match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS
        | Method::TRACE
        | Method::CONNECT => method.as_str(),
        _ => "other",
    }
}

/// The route of a request no route matched, in metrics, the dashboard and the log.
const UNMATCHED: &str = "unmatched";

/// A request as counted once its answer is ready.
pub(crate) struct Finished<'a> {
    pub tally: &'a Tally,
    pub elapsed_secs: f64,
    pub request_id: &'a str,
    pub timed_out: bool,
    pub user: &'a CallerSlot,
}

impl Finished<'_> {
    pub(crate) fn record(&self, state: &AppState) {
        let tally = self.tally;
        let status = tally.status.as_u16();
        let duration_ms = self.elapsed_secs * 1000.0;
        let route = tally.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        if let Some(surface) = tally.surface {
            state
                .status
                .record_request(surface, tally.status.is_server_error());
        }
        tally.requests.increment(1);
        tally.duration.record(self.elapsed_secs);
        state.monitor.record(
            RequestSeen {
                key: &tally.key,
                method: tally.method.as_str(),
                route,
                status,
                duration_ms,
                request_id: self.request_id,
            },
            self.timed_out,
        );
        let user_id = self.user.user();
        tracing::info!(
            target: "velro::access",
            method = tally.method.as_str(),
            route,
            status,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            user_id = %user_id.map_or_else(|| "-".to_string(), |id| id.to_string()),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_request_is_tallied_once_and_the_tallies_are_bounded() {
        let tallies = Tallies::default();
        let ok = tallies.get(&Method::GET, None, StatusCode::OK);
        assert!(Arc::ptr_eq(
            &ok,
            &tallies.get(&Method::GET, None, StatusCode::OK)
        ));
        assert_eq!(ok.key, "GET unmatched");
        let other = tallies.get(&Method::GET, None, StatusCode::UNAUTHORIZED);
        assert!(!Arc::ptr_eq(&ok, &other));
        assert!(!Arc::ptr_eq(
            &ok,
            &tallies.get(&Method::POST, None, StatusCode::OK)
        ));
        for code in 300..400 {
            let status = StatusCode::from_u16(code).expect("a status");
            tallies.get(&Method::GET, None, status);
        }
        assert_eq!(tallies.0.read().expect("not poisoned").len(), TALLIES_KEPT);
    }

    #[test]
    fn made_up_methods_share_one_series() {
        let tallies = Tallies::default();
        let made_up = Method::from_bytes(b"BREW").expect("an extension method");
        assert_eq!(
            tallies
                .get(&made_up, None, StatusCode::METHOD_NOT_ALLOWED)
                .key,
            "other unmatched"
        );
        assert_eq!(
            tallies.get(&Method::PATCH, None, StatusCode::OK).key,
            "PATCH unmatched"
        );
    }
}
