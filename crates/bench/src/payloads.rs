//! Unique, signed, ~3 KB deliveries, made on the fly from one template.

use showpass_payload::samples::{SampleIds, SampleKind, sample};
use showpass_payload::signature;

const UUID_MARK: &str = "00000000-0000-0000-0000-000000000000";
const TXN_MARK: &str = "TXN-0000000000000000";

/// Makes delivery `i` of a run: same shape, its own `webhook_event_uuid` and transaction.
pub struct Payloads {
    template: String,
    secret: Vec<u8>,
    run: String,
}

impl Payloads {
    pub fn new(secret: &str) -> Self {
        let ids = SampleIds {
            webhook_event_uuid: UUID_MARK,
            transaction_id: TXN_MARK,
            organization_id: "20",
        };
        let mut v = sample(SampleKind::Purchase, &ids);
        // Pad to about 3 KB, the size of a real two-ticket delivery with every field filled.
        v["data"]["customer_name"] = serde_json::json!("Alexandra Buyer-Longname");
        let mut body = serde_json::to_string(&v).expect("sample serializes");
        let pad = 3_000usize.saturating_sub(body.len() + 20);
        v["data"]["notes"] = serde_json::json!("x".repeat(pad));
        body = serde_json::to_string(&v).expect("sample serializes");
        Self {
            template: body,
            secret: secret.as_bytes().to_vec(),
            run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        }
    }

    /// Body and signature of delivery `i`.
    pub fn get(&self, i: u64) -> (String, String) {
        let uuid = format!("{}-0000-4000-8000-{i:012}", self.run);
        let txn = format!("TXN-{}{i:08}", self.run);
        let body = self
            .template
            .replace(UUID_MARK, &uuid)
            .replace(TXN_MARK, &txn);
        let sig = signature::sign(&self.secret, &txn);
        (body, sig)
    }

    pub fn size(&self) -> usize {
        self.get(0).0.len()
    }
}
