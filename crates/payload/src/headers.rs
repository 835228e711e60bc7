//! NATS header names on the events and deliveries streams: the contract between ingest,
//! the projector and every subscriber.
pub const MSG_ID: &str = "Nats-Msg-Id";
pub const EVENT_TYPE: &str = "Showpass-Event-Type";
pub const WEBHOOK_EVENT_UUID: &str = "Showpass-Webhook-Event-Uuid";
pub const TRANSACTION_ID: &str = "Showpass-Transaction-Id";
pub const ORGANIZATION_ID: &str = "Showpass-Organization-Id";
pub const ENDPOINT: &str = "Showpass-Endpoint";
pub const RECEIVED_AT: &str = "Showpass-Received-At";
pub const DELIVERY_ID: &str = "Showpass-Delivery-Id";
pub const REMOTE_ADDR: &str = "Showpass-Remote-Addr";
pub const IDEMPOTENCY_KEY: &str = "Showpass-Idempotency-Key";
pub const OUTCOME: &str = "Showpass-Outcome";
pub const REASON: &str = "Showpass-Reason";
pub const DETAIL: &str = "Showpass-Detail";
pub const HTTP_STATUS: &str = "Showpass-Http-Status";
pub const BODY_SHA256: &str = "Showpass-Body-Sha256";
pub const BODY_LENGTH: &str = "Showpass-Body-Length";
pub const BODY_TRUNCATED: &str = "Showpass-Body-Truncated";
pub const CONTENT_TYPE: &str = "Content-Type";
/// On a replayed event: the stream sequence of the original.
pub const REPLAY_OF: &str = "Showpass-Replay-Of";
/// Why an accepted delivery should be looked at: `id_transaction_mismatch: ...`.
pub const SUSPECT: &str = "Showpass-Suspect";
/// On a redacted copy left by an erasure: when the erasure ran (RFC 3339). The copy keeps the
/// original's other headers, `Showpass-Body-Sha256` (the original body's) among them.
pub const ERASED: &str = "Showpass-Erased";
