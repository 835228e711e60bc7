//! The tiers a summary reads: whole UTC days from the daily tier, the rest from the
//! 15-minute one.

use chrono::{DateTime, Duration, Utc};
use showpass_payload::vocab::{Grain, Tier};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::SalesFilters;
use crate::error::ApiResult;
use crate::params::{self, Range, When};

impl SalesFilters {
    /// `from` and `to` as instants, days starting at midnight in `tz`.
    pub(super) async fn range(&self, pool: &PgPool) -> ApiResult<Range> {
        let day = |w: Option<When>| match w {
            Some(When::Day(d)) => Some(d),
            _ => None,
        };
        let (first, past) = (
            day(self.from),
            day(self.to).map(|d| d.succ_opt().unwrap_or(d)),
        );
        if is_utc(&self.tz) || (first.is_none() && past.is_none()) {
            return Ok(Range::of(self.from, self.to, params::utc_midnight));
        }
        // Midnights in another zone come from PostgreSQL's zone database, which checked `tz`.
        let (start, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT $1::date::timestamp AT TIME ZONE $3, $2::date::timestamp AT TIME ZONE $3",
        )
        .bind(first)
        .bind(past)
        .bind(&self.tz)
        .fetch_one(pool)
        .await?;
        let utc = Range::of(self.from, self.to, params::utc_midnight);
        Ok(Range {
            start: if first.is_some() { start } else { utc.start },
            end: if past.is_some() { end } else { utc.end },
        })
    }

    /// `AND ...` on the column `time` (a bucket or an arrival time) of the alias `s`.
    pub(super) fn push(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        time: &str,
        with_event: bool,
        range: Range,
    ) {
        if let Some(org) = &self.org {
            sql.push(" AND s.org_id = ").push_bind(org.clone());
        }
        if with_event && let Some(e) = &self.event {
            sql.push(" AND s.event_id = ").push_bind(e.clone());
        }
        if let Some(start) = range.start {
            sql.push(format!(" AND {time} >= ")).push_bind(start);
        }
        if let Some(end) = range.end {
            sql.push(format!(" AND {time} < ")).push_bind(end);
        }
    }

    /// `(SELECT ...) s`: the cells of `table` a summary sums over. Whole UTC days come from
    /// the table's daily tier; a range's edges off UTC midnight, and every cell when days are
    /// counted in another zone, from its 15-minute tier.
    pub(super) fn push_cells(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        grain: Grain,
        range: Range,
        local_days: bool,
    ) {
        let pieces = if local_days {
            vec![(Tier::Quarter, range)]
        } else {
            tiles(range)
        };
        sql.push("(");
        for (i, (t, r)) in pieces.into_iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push(format!("SELECT * FROM {} s WHERE true", grain.table_of(t)));
            self.push(sql, "s.bucket", grain.has_event(), r);
        }
        sql.push(") s");
    }
}

/// Tiles a range with as many whole UTC days from the daily tier as it holds, and its edges
/// from the 15-minute tier. The tiles never overlap and cover the range exactly.
fn tiles(range: Range) -> Vec<(Tier, Range)> {
    let first_day = range.start.map(|t| {
        let day = utc_day(t);
        if day == t { t } else { day + Duration::days(1) }
    });
    let last_day = range.end.map(utc_day);
    let mut tiles = vec![(
        Tier::Day,
        Range {
            start: first_day,
            end: last_day,
        },
    )];
    if range.start != first_day {
        let end = match (first_day, range.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tiles.push((
            Tier::Quarter,
            Range {
                start: range.start,
                end,
            },
        ));
    }
    if range.end != last_day {
        let start = match (first_day, last_day) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        tiles.push((
            Tier::Quarter,
            Range {
                start,
                end: range.end,
            },
        ));
    }
    tiles.retain(|(_, r)| !r.is_empty());
    if tiles.is_empty() {
        // An empty range: one tile that matches nothing.
        tiles.push((Tier::Quarter, range));
    }
    tiles
}

/// The UTC midnight at or before `t`.
fn utc_day(t: DateTime<Utc>) -> DateTime<Utc> {
    Tier::Day.bucket(t)
}

/// Zones whose days are UTC days (PostgreSQL's names for them, in any case).
pub(super) fn is_utc(tz: &str) -> bool {
    const UTC: &[&str] = &[
        "UTC",
        "Etc/UTC",
        "GMT",
        "Etc/GMT",
        "UCT",
        "Etc/UCT",
        "Universal",
        "Etc/Universal",
        "Zulu",
        "Etc/Zulu",
        "Greenwich",
        "Etc/Greenwich",
        "GMT0",
        "Etc/GMT0",
    ];
    UTC.iter().any(|z| z.eq_ignore_ascii_case(tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
    }

    /// Which tile holds the quarter hour starting at `t` (exactly one, or none outside).
    fn holder(tiles: &[(Tier, Range)], t: DateTime<Utc>) -> Option<Tier> {
        let inside = |r: &Range| r.start.is_none_or(|s| s <= t) && r.end.is_none_or(|e| t < e);
        let holders: Vec<Tier> = tiles
            .iter()
            .filter(|(_, r)| inside(r))
            .map(|(k, _)| *k)
            .collect();
        assert!(holders.len() <= 1, "{t} is in {holders:?}");
        holders.first().copied()
    }

    #[test]
    fn tiles_cover_a_range_exactly_with_whole_days_from_the_daily_tier() {
        let ends = [
            None,
            Some(at(10, 0, 0)),
            Some(at(10, 10, 15)),
            Some(at(11, 0, 0)),
            Some(at(11, 23, 45)),
            Some(at(13, 0, 0)),
            Some(at(13, 6, 30)),
        ];
        for start in ends {
            for end in ends {
                let range = Range { start, end };
                let tiles = tiles(range);
                for daily in tiles.iter().filter(|(k, _)| *k == Tier::Day) {
                    let r = daily.1;
                    assert!(
                        r.start.is_none_or(|s| s == utc_day(s)),
                        "{range:?}: {tiles:?}"
                    );
                    assert!(
                        r.end.is_none_or(|e| e == utc_day(e)),
                        "{range:?}: {tiles:?}"
                    );
                }
                let mut t = at(9, 0, 0);
                while t < at(15, 0, 0) {
                    let inside = start.is_none_or(|s| s <= t) && end.is_none_or(|e| t < e);
                    assert_eq!(
                        holder(&tiles, t).is_some(),
                        inside,
                        "{range:?} at {t}: {tiles:?}"
                    );
                    t += Duration::minutes(15);
                }
            }
        }
        assert_eq!(
            tiles(Range::default()),
            vec![(Tier::Day, Range::default())],
            "all time is the daily tier alone"
        );
    }

    #[test]
    fn days_are_utc_days_only_in_zones_without_an_offset() {
        assert!(is_utc("UTC") && is_utc("etc/utc") && is_utc("GMT"));
        assert!(!is_utc("America/Edmonton") && !is_utc("Asia/Kathmandu") && !is_utc("UTC+5"));
    }
}
