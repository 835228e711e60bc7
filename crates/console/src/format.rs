//! Figures as people read them: money with its currency and thousands separators, times in
//! UTC to the second, durations in words.

/// `"1234567.50"` and `"CAD"` as `1,234,567.50 CAD`. The api's decimal strings are kept
/// digit for digit (no float rounding).
pub fn money(amount: &str, currency: &str) -> String {
    let amount = grouped(amount);
    if currency.is_empty() {
        amount
    } else {
        format!("{amount} {currency}")
    }
}

/// A decimal string with thousands separators in its integer part.
pub fn grouped(amount: &str) -> String {
    let (sign, rest) = match amount.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", amount),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return amount.to_owned();
    }
    let mut out = String::with_capacity(amount.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    grouped(&n.to_string())
}

/// An RFC 3339 time as `2026-11-27 18:02:11 UTC`.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Seconds as `42 s`, `7 min`, `3 h 5 min` or `2 d 4 h`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A decimal string as a float, for drawing only (0 when it does not parse).
pub fn float(amount: &str) -> f64 {
    amount.parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_its_digits_and_carries_its_currency() {
        assert_eq!(money("1234567.50", "CAD"), "1,234,567.50 CAD");
        assert_eq!(money("-1000.00", "USD"), "-1,000.00 USD");
        assert_eq!(money("107.00", "CAD"), "107.00 CAD");
        assert_eq!(money("0.00", ""), "0.00");
        assert_eq!(grouped("123456"), "123,456");
        assert_eq!(grouped("not a number"), "not a number");
        assert_eq!(count(1_000_000), "1,000,000");
    }

    #[test]
    fn ages_read_in_words() {
        assert_eq!(age(-3.0), "0 s");
        assert_eq!(age(59.9), "59 s");
        assert_eq!(age(600.0), "10 min");
        assert_eq!(age(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(age(2.0 * 86_400.0 + 4.0 * 3600.0), "2 d 4 h");
    }
}

/// `s` as one path segment: everything but unreserved characters percent-encoded, so an id
/// holding `/`, `?` or `#` still names one page.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod segment_tests {
    #[test]
    fn a_segment_cannot_leave_its_place_in_the_path() {
        assert_eq!(super::segment("ab12"), "ab12");
        assert_eq!(super::segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(super::segment(".."), "..");
    }
}
