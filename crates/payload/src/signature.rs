//! `X-SHOWPASS-SIGNATURE`: lowercase hex HMAC-SHA1(endpoint secret, the payload's `id`).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Length of a SHA-1 MAC in bytes.
const MAC_LEN: usize = 20;

/// The signature Showpass sends for `id` under `secret`: lowercase hex.
pub fn sign(secret: &[u8], id: &str) -> String {
    hex::encode(mac(secret, id))
}

fn mac(secret: &[u8], id: &str) -> [u8; MAC_LEN] {
    let mut m = HmacSha1::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(id.as_bytes());
    m.finalize().into_bytes().into()
}

/// Reads a signature header: hex in either case, surrounding whitespace and quotes allowed.
/// Anything that is not exactly 40 hex digits (empty, short, long, not hex) is `None`.
pub fn parse_header(value: &[u8]) -> Option<[u8; MAC_LEN]> {
    let trimmed = trim(value, |b| b.is_ascii_whitespace());
    let unquoted = trim(trimmed, |b| b == b'"' || b == b'\'');
    let hexes = trim(unquoted, |b| b.is_ascii_whitespace());
    let mut out = [0u8; MAC_LEN];
    hex::decode_to_slice(hexes, &mut out).ok()?;
    Some(out)
}

fn trim(v: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = v.iter().position(|b| !strip(*b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !strip(*b)).map_or(start, |e| e + 1);
    &v[start..end]
}

/// Whether `signature` is the MAC of `id` under any of `secrets`, compared in constant time.
/// Every secret is tried, so the time taken does not tell which one matched.
pub fn verify<'s>(
    secrets: impl IntoIterator<Item = &'s [u8]>,
    id: &str,
    signature: &[u8; MAC_LEN],
) -> bool {
    let mut ok = subtle::Choice::from(0);
    for secret in secrets {
        ok |= mac(secret, id).ct_eq(signature);
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), the textbook vector.
    #[test]
    fn signs_like_the_reference_hmac_sha1() {
        assert_eq!(
            sign(b"key", "The quick brown fox jumps over the lazy dog"),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
    }

    #[test]
    fn a_signature_verifies_and_a_tampered_one_does_not() {
        let sig = parse_header(sign(b"s3cret", "txn-1").as_bytes()).unwrap();
        assert!(verify([b"s3cret".as_slice()], "txn-1", &sig));
        assert!(!verify([b"s3cret".as_slice()], "txn-2", &sig));
        assert!(!verify([b"other".as_slice()], "txn-1", &sig));
        let mut tampered = sig;
        tampered[19] ^= 1;
        assert!(!verify([b"s3cret".as_slice()], "txn-1", &tampered));
    }

    #[test]
    fn any_of_an_endpoints_secrets_may_match_during_rotation() {
        let sig = parse_header(sign(b"new", "txn").as_bytes()).unwrap();
        assert!(verify([b"old".as_slice(), b"new".as_slice()], "txn", &sig));
        assert!(!verify(Vec::<&[u8]>::new(), "txn", &sig));
    }

    #[test]
    fn headers_in_upper_case_quoted_or_padded_are_read() {
        let sig = sign(b"k", "id");
        let want = parse_header(sig.as_bytes()).unwrap();
        for v in [
            sig.to_uppercase(),
            format!("\"{sig}\""),
            format!("  {sig}\t"),
            format!(" ' {sig} ' "),
        ] {
            assert_eq!(parse_header(v.as_bytes()), Some(want), "{v:?}");
        }
    }

    #[test]
    fn empty_short_long_or_non_hex_headers_are_refused() {
        let sig = sign(b"k", "id");
        for v in [
            String::new(),
            "\"\"".into(),
            sig[..39].to_string(),
            sig[..38].to_string(),
            format!("{sig}00"),
            format!("{}zz", &sig[..38]),
            format!("sha1={sig}"),
        ] {
            assert_eq!(parse_header(v.as_bytes()), None, "{v:?}");
        }
    }

    proptest! {
        #[test]
        fn every_signature_verifies_under_its_own_secret_only(
            secret in proptest::collection::vec(any::<u8>(), 0..80),
            other in proptest::collection::vec(any::<u8>(), 0..80),
            id in ".{1,64}",
        ) {
            let sig = parse_header(sign(&secret, &id).as_bytes()).unwrap();
            prop_assert!(verify([secret.as_slice()], &id, &sig));
            if other != secret {
                prop_assert!(!verify([other.as_slice()], &id, &sig));
            }
        }

        #[test]
        fn parsing_any_header_never_panics(h in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse_header(&h);
        }
    }
}
