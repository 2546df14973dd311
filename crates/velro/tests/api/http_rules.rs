//! The rules every response follows: request ids, error shapes, body limits, media types.

use reqwest::StatusCode;

use crate::both_stores;
use crate::helpers::{expect_error, TestApp};

both_stores!(unknown_routes_are_404_in_the_contract_shape,);

async fn unknown_routes_are_404_in_the_contract_shape(app: TestApp) {
    let response = app.client.get(app.url("/nowhere")).send().await.expect("sent");
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
