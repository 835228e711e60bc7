//! Money on the wire: a decimal string with two places (`"107.00"`), never a float.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An amount of money as a decimal string with two places.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, example = "107.00", pattern = r"^-?[0-9]+\.[0-9]{2}$")]
pub struct Money(pub Decimal);

impl From<Decimal> for Money {
    fn from(d: Decimal) -> Self {
        Self(d)
    }
}

impl Money {
    pub fn text(&self) -> String {
        let rounded = self
            .0
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        // `-0.00` is noise: a sum that nets to zero is zero.
        let rounded = if rounded.is_zero() {
            Decimal::ZERO
        } else {
            rounded
        };
        format!("{rounded:.2}")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

/// Read from the read models' JSON, where amounts are exact decimal strings.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Decimal as Deserialize>::deserialize(d).map(Money)
    }
}

/// An amount in one currency: amounts in different currencies are listed, never added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CurrencyAmount {
    #[schema(example = "USD")]
    pub currency: String,
    pub amount: Money,
}

/// A list of [`CurrencyAmount`] as the read models store it (JSON).
pub type CurrencyAmounts = sqlx::types::Json<Vec<CurrencyAmount>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn money(s: &str) -> String {
        Money(Decimal::from_str(s).unwrap()).text()
    }

    #[test]
    fn money_always_has_two_places() {
        assert_eq!(money("107"), "107.00");
        assert_eq!(money("107.5"), "107.50");
        assert_eq!(money("0"), "0.00");
        assert_eq!(money("-58.4"), "-58.40");
    }

    #[test]
    fn money_rounds_half_away_from_zero_and_never_prints_minus_zero() {
        assert_eq!(money("1.005"), "1.01");
        assert_eq!(money("-1.005"), "-1.01");
        assert_eq!(money("-0.001"), "0.00");
        assert_eq!(money("-0"), "0.00");
    }
}
