//! The OpenAPI document is a public contract: this snapshot makes every change to it visible
//! in review. After a deliberate change: `UPDATE_OPENAPI=1 cargo test -p showpass-api --test openapi`.

use std::path::Path;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let doc = serde_json::to_string_pretty(&showpass_api::openapi()).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(SNAPSHOT, &doc).unwrap();
        return;
    }
    let snapshot = std::fs::read_to_string(Path::new(SNAPSHOT)).unwrap_or_default();
    assert!(
        snapshot == doc,
        "the OpenAPI document changed; if that is deliberate, run \
         UPDATE_OPENAPI=1 cargo test -p showpass-api --test openapi and commit docs/openapi.json"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_contract_route() {
    let doc = serde_json::to_value(showpass_api::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/customers", "get"),
        ("/v1/customers/{id}", "get"),
        ("/v1/orders", "get"),
        ("/v1/orders/{transaction_id}", "get"),
        ("/v1/tickets", "get"),
        ("/v1/events", "get"),
        ("/v1/sales/summary", "get"),
        ("/v1/logs", "get"),
        ("/v1/logs/{id}", "get"),
        ("/v1/logs/{id}/replay", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let customer = &doc["components"]["schemas"]["CustomerOut"]["properties"];
    for field in [
        "id",
        "org_id",
        "email",
        "name",
        "phone",
        "subscribed_to_venue",
        "orders_count",
        "tickets_count",
        "total_spent",
        "first_seen_at",
        "last_seen_at",
    ] {
        assert!(customer[field].is_object(), "customer.{field} missing");
    }
}
