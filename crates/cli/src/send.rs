//! `showpass send`: sign a delivery as Showpass does and POST it.

use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use showpass_payload::samples::{SampleIds, SampleKind, sample};
use showpass_payload::{Envelope, signature};

use crate::http;

/// Where deliveries go and the secret they are signed with: shared by `send` and `simulate`.
#[derive(Args, Debug)]
pub struct Target {
    /// The ingest URL to POST to (plain http).
    #[arg(
        long,
        env = "SHOWPASS_SEND_URL",
        default_value = "http://127.0.0.1:8080/webhooks/showpass"
    )]
    pub url: String,
    /// The endpoint secret to sign with (the first of a comma-separated list).
    #[arg(long, env = "SHOWPASS_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

impl Target {
    /// The secret to sign with: the first of the list.
    pub fn secret(&self) -> anyhow::Result<String> {
        Ok(self
            .secret
            .as_deref()
            .and_then(|s| s.split(',').map(str::trim).find(|s| !s.is_empty()))
            .context("no secret to sign with: pass --secret or set SHOWPASS_WEBHOOK_SECRET")?
            .to_owned())
    }
}

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: Target,
    /// Send this file's bytes exactly as they are.
    #[arg(long, conflicts_with = "sample")]
    pub file: Option<PathBuf>,
    /// Send a built-in sample: purchase, refund, void, transfer, transferred or test.
    #[arg(long, default_value = "purchase", value_parser = parse_kind)]
    pub sample: SampleKind,
    /// The sample's transaction id (default: a new one). Use the purchase's to refund it.
    #[arg(long)]
    pub transaction_id: Option<String>,
    /// The sample's organization id.
    #[arg(long, default_value = "20")]
    pub org: String,
    /// The sample's webhook_event_uuid (default: a new one; reuse one to see a duplicate).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Print the signed request as a curl command instead of sending it.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_kind(s: &str) -> Result<SampleKind, String> {
    SampleKind::parse(s).ok_or_else(|| {
        format!("unknown sample {s:?}: use purchase, refund, void, transfer, transferred or test")
    })
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let secret = args.target.secret()?;
    let body = match &args.file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let uuid = args
                .uuid
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let txn = args.transaction_id.clone().unwrap_or_else(|| {
                format!("sp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
            });
            let ids = SampleIds {
                webhook_event_uuid: &uuid,
                transaction_id: &txn,
                organization_id: &args.org,
            };
            serde_json::to_vec_pretty(&sample(args.sample, &ids))?
        }
    };
    let envelope =
        Envelope::parse(&body).context("the payload is not a delivery Showpass could sign")?;
    let sig = signature::sign(secret.as_bytes(), &envelope.id);
    eprintln!(
        "{} {} (transaction {}, webhook_event_uuid {})",
        envelope.event_type.as_deref().unwrap_or("(no event_type)"),
        envelope.id,
        envelope.transaction_id.as_deref().unwrap_or("-"),
        envelope.webhook_event_uuid.as_deref().unwrap_or("-"),
    );
    if args.dry_run {
        let path = std::env::temp_dir().join(format!("showpass-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, &body)?;
        println!(
            "curl -sS -X POST '{}' -H 'Content-Type: application/json' -H 'X-SHOWPASS-SIGNATURE: {sig}' --data-binary @{}",
            args.target.url,
            path.display()
        );
        return Ok(());
    }
    let headers = [
        ("content-type", "application/json"),
        ("x-showpass-signature", sig.as_str()),
    ];
    let (status, answer) =
        http::request("POST", &args.target.url, &headers, Bytes::from(body)).await?;
    println!("HTTP {status}");
    println!("{}", String::from_utf8_lossy(&answer));
    anyhow::ensure!(status.is_success(), "ingest answered {status}");
    Ok(())
}
