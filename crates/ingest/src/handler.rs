//! `POST /webhooks/showpass[/{endpoint}]`: verify, publish, answer.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use bytes::BytesMut;
use http_body_util::BodyExt;
use showpass_payload::vocab::Reason;
use showpass_payload::{Envelope, signature, subject};

use crate::DEFAULT_ENDPOINT;
use crate::answer::{Refusal, Trust};
use crate::bindings::Check;
use crate::deliveries::DeliveryMeta;
use crate::limits::{Held, NoRoom};
use crate::state::AppState;

/// Receives a delivery for the default endpoint.
pub(crate) async fn receive_default(State(state): State<AppState>, req: Request) -> Response {
    receive(state, DEFAULT_ENDPOINT.to_owned(), req).await
}

/// Receives a delivery for a named endpoint.
pub(crate) async fn receive_named(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    req: Request,
) -> Response {
    receive(state, endpoint, req).await
}

// The span is at debug level: at the default `info` it costs nothing per request, and every
// event worth seeing at `info` or above carries the delivery id and endpoint itself.
#[tracing::instrument(
    name = "delivery",
    level = "debug",
    skip_all,
    fields(endpoint = %endpoint, delivery_id = tracing::field::Empty, outcome = tracing::field::Empty)
)]
async fn receive(state: AppState, endpoint: String, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let (parts, body) = req.into_parts();
    let remote = match &state.config.allowlist {
        Some(a) => a.client_addr(peer, &forwarded_for(&parts.headers)),
        None => peer,
    };
    let meta = DeliveryMeta::new(&endpoint, remote);
    tracing::Span::current().record("delivery_id", tracing::field::display(meta.id));

    // Before anything names an endpoint: a refused source learns nothing, not even which
    // endpoints exist. Neither refusal is recorded one by one: they are counted.
    if let Some(allowlist) = &state.config.allowlist
        && !allowlist.allows(remote)
    {
        let r = Refusal::new(
            StatusCode::FORBIDDEN,
            Reason::SourceNotAllowed,
            format!("source address {remote} is not on the allowlist"),
        );
        return state.count_only(&meta, r);
    }
    let Some(endpoint_config) = state.config.endpoints.get(&endpoint) else {
        let r = Refusal::new(
            StatusCode::NOT_FOUND,
            Reason::UnknownEndpoint,
            format!("no endpoint named {:?}", subject::header_value(&endpoint)),
        );
        return state.count_only(&meta, r);
    };
    // A request without a signature is refused before its body is read. A malformed one is
    // not: the body decides between 400 (not a delivery) and 401, as it always has, and
    // refusing it early would protect nothing (any client can send 40 hex digits).
    let Some(sig) = parts
        .headers
        .get("x-showpass-signature")
        .map(|v| signature::parse_header(v.as_bytes()))
    else {
        let r = Refusal::new(
            StatusCode::UNAUTHORIZED,
            Reason::MissingSignature,
            "the X-SHOWPASS-SIGNATURE header is missing",
        );
        return state.refuse(&meta, None, &Bytes::new(), r, Trust::Unsigned);
    };
    let (body, _held) = match read_body(&state, &parts.headers, remote, body).await {
        Ok(b) => b,
        Err(r) => return state.refuse(&meta, None, &Bytes::new(), r, Trust::Unsigned),
    };
    let envelope = match Envelope::parse(&body) {
        Ok(e) => e,
        Err(e) => {
            let r = Refusal::new(StatusCode::BAD_REQUEST, Reason::InvalidBody, e.to_string());
            return state.refuse(&meta, None, &body, r, Trust::Unsigned);
        }
    };
    let verified = sig.is_some_and(|sig| {
        signature::verify(
            endpoint_config
                .secrets
                .iter()
                .map(|s| s.expose().as_bytes()),
            &envelope.id,
            &sig,
        )
    });
    if !verified {
        let detail = if sig.is_none() {
            "the X-SHOWPASS-SIGNATURE header is not 40 hex digits"
        } else {
            "the X-SHOWPASS-SIGNATURE header does not match the payload id under this endpoint's secret"
        };
        let r = Refusal::new(StatusCode::UNAUTHORIZED, Reason::BadSignature, detail);
        return state.refuse(&meta, Some(&envelope), &body, r, Trust::Unsigned);
    }
    let org = envelope.organization_id.as_deref();
    if !endpoint_config.allows_org(org) {
        let r = Refusal::new(
            StatusCode::FORBIDDEN,
            Reason::OrganizationNotAllowed,
            format!(
                "endpoint {:?} does not deliver for organization {:?}",
                meta.endpoint,
                subject::header_value(org.unwrap_or("(none)"))
            ),
        );
        return state.refuse(&meta, Some(&envelope), &body, r, Trust::Signed);
    }
    // Every accepted id is bound, single-organization endpoints' included: the binding is what
    // still holds when an endpoint's organizations or secrets change later.
    let suspect = match state.bind(&envelope).await {
        Ok(Check::Agrees) => None,
        Ok(Check::OtherTransaction(first)) => Some(format!(
            "id_transaction_mismatch: this id was first accepted for transaction {:?}",
            subject::header_value(&first)
        )),
        Ok(Check::OtherOrg(first)) => {
            let r = Refusal::new(
                StatusCode::CONFLICT,
                Reason::IdConflict,
                format!(
                    "this signed id was first accepted for organization {:?}; a signature \
                     cannot move to another organization",
                    subject::header_value(&first)
                ),
            );
            return state.refuse(&meta, Some(&envelope), &body, r, Trust::Signed);
        }
        Ok(Check::Unreadable) => {
            let r = Refusal::new(
                StatusCode::CONFLICT,
                Reason::IdConflict,
                "this signed id's binding is unreadable, so the delivery cannot be held to an \
                 organization; an operator must look at the bindings bucket",
            );
            return state.refuse(&meta, Some(&envelope), &body, r, Trust::Signed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "id binding unavailable");
            let r = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::NatsUnavailable,
                "the event store is unreachable; retry later",
            );
            return state.refuse(&meta, Some(&envelope), &body, r, Trust::Signed);
        }
    };

    state
        .publish(&meta, &envelope, body.clone(), suspect.as_deref())
        .await
}

/// Every `X-Forwarded-For` line, in order, as one list: a client may send a line of its own
/// before the proxy's, and only reading them all finds the hop the proxy saw. A line that is
/// not text stands as one unreadable hop, where the chain that can be believed ends.
fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(line) => line.split(',').map(|hop| hop.trim().to_owned()).collect(),
            Err(_) => vec![String::new()],
        })
        .collect()
}

/// Reads the body within the size limit, the request deadline and the process's body budget.
/// The budget is held until the request is answered.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    from: std::net::IpAddr,
    mut body: axum::body::Body,
) -> Result<(Bytes, Held), Refusal> {
    let limit = state.config.body_limit;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::BodyTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + state.config.request_timeout;
    let timed_out = || {
        Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            Reason::BodyTimeout,
            "the body did not arrive in time",
        )
    };
    // The room for the whole body is taken at once (what it declares, else the limit): taken
    // piece by piece, many bodies half read could each hold a part and none ever finish.
    let room = declared.map_or(limit, |n| n as usize);
    let held = match tokio::time::timeout_at(deadline, state.budget.hold(from, room)).await {
        Ok(Ok(held)) => held,
        Ok(Err(NoRoom::TooLarge)) => return Err(too_large()),
        Ok(Err(NoRoom::SourceFull)) => {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::Busy,
                "this source has too many bodies in flight; retry later",
            ));
        }
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::Busy,
                "too many bodies are being received at once; retry later",
            ));
        }
    };
    // Memory follows what arrives, not what is declared: a client that declares a large body
    // and sends a trickle holds 16 KiB here (and its room in the budget), no more.
    let mut buf = BytesMut::with_capacity(room.min(16 * 1024));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    Reason::BodyUnreadable,
                    format!("the body could not be read: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = buf.len() + data.len();
        // More than it declared is a lie; more than the limit, too large.
        if total > room {
            return Err(too_large());
        }
        if buf.is_empty() && data.len() == total && declared == Some(total as u64) {
            // The whole body in one frame: no copy.
            return Ok((data, held));
        }
        if total > buf.capacity() {
            // Once, to the whole room: no doubling past what the body may hold.
            buf.reserve(room - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Allowlist;

    /// A client's line that is not text, followed by the proxy's own line: the proxy's hop is
    /// read, and the chain that can be believed ends at the unreadable line (issue 12 review).
    #[test]
    fn an_unreadable_forwarded_for_line_ends_the_chain_without_hiding_the_proxys_hop() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"34.83.8.110, \xff").unwrap(),
        );
        headers.append("x-forwarded-for", "198.51.100.7".parse().unwrap());
        let hops = forwarded_for(&headers);
        assert_eq!(hops, ["", "198.51.100.7"]);
        let allowlist = Allowlist::parse("showpass", Some("10.0.0.0/8")).unwrap();
        let client = allowlist.client_addr("10.0.0.2".parse().unwrap(), &hops);
        assert_eq!(client, "198.51.100.7".parse::<std::net::IpAddr>().unwrap());
        assert!(!allowlist.allows(client));
    }
}
