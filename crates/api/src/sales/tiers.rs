//! The tiers a summary reads: whole UTC months from the monthly tier, whole UTC days of the
//! rest from the daily tier, and what is left from the 15-minute one.

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

    /// `(SELECT ...) s`: the cells of `table` a summary sums over. Whole UTC months come from
    /// the monthly tier (unless the rows are days: `by_day`), whole UTC days of the rest from the
    /// daily tier; a range's edges off UTC midnight, and every cell when days are counted in
    /// another zone, from the 15-minute tier.
    pub(super) fn push_cells(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        grain: Grain,
        range: Range,
        cells: Cells,
    ) {
        let pieces = match cells {
            Cells::LocalDays => vec![(Tier::Quarter, range)],
            Cells::UtcDays => tiles(range, &[Tier::Day]),
            Cells::Any => tiles(range, &[Tier::Month, Tier::Day]),
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

/// Which cells a summary's rows may be summed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cells {
    /// Any tier: the rows are not days.
    Any,
    /// Rows are UTC days: no coarser tier than days.
    UtcDays,
    /// Rows are days in another zone: 15-minute cells only.
    LocalDays,
}

/// Tiles a range with as many whole buckets of `tiers[0]` (the coarsest) as it holds, its
/// edges with the next tier's, and so on; what no tier holds whole comes from the 15-minute
/// tier. The tiles never overlap and cover the range exactly.
fn tiles(range: Range, tiers: &[Tier]) -> Vec<(Tier, Range)> {
    let mut out = Vec::new();
    tile(range, tiers, &mut out);
    out.retain(|(_, r)| !r.is_empty());
    if out.is_empty() {
        // An empty range: one tile that matches nothing.
        out.push((Tier::Quarter, range));
    }
    out
}

fn tile(range: Range, tiers: &[Tier], out: &mut Vec<(Tier, Range)>) {
    let Some((&tier, finer)) = tiers.split_first() else {
        out.push((Tier::Quarter, range));
        return;
    };
    let inner = Range {
        start: range.start.map(|s| ceil(tier, s)),
        end: range.end.map(|e| tier.bucket(e)),
    };
    if inner.is_empty() {
        return tile(range, finer, out);
    }
    out.push((tier, inner));
    if range.start != inner.start {
        tile(
            Range {
                start: range.start,
                end: inner.start,
            },
            finer,
            out,
        );
    }
    if range.end != inner.end {
        tile(
            Range {
                start: inner.end,
                end: range.end,
            },
            finer,
            out,
        );
    }
}

/// The first boundary of `tier` at or after `t`.
fn ceil(tier: Tier, t: DateTime<Utc>) -> DateTime<Utc> {
    let start = tier.bucket(t);
    if start == t {
        return t;
    }
    match tier {
        Tier::Month => start
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(t),
        Tier::Day => start + Duration::days(1),
        Tier::Quarter => start + Duration::minutes(15),
    }
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

    /// Instants around month and day boundaries.
    fn ends() -> Vec<Option<DateTime<Utc>>> {
        use chrono::TimeZone as _;
        let t = |m: u32, d: u32, h: u32, min: u32| {
            Some(Utc.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap())
        };
        vec![
            None,
            t(9, 30, 23, 45),
            t(10, 1, 0, 0),
            t(10, 1, 10, 15),
            t(10, 2, 0, 0),
            t(10, 31, 6, 30),
            t(11, 1, 0, 0),
            t(11, 10, 0, 0),
            t(11, 10, 10, 15),
            t(11, 11, 23, 45),
            t(12, 1, 0, 0),
            t(12, 2, 6, 30),
        ]
    }

    #[test]
    fn tiles_cover_a_range_exactly_with_whole_months_then_whole_days() {
        use chrono::TimeZone as _;
        for tiers in [&[Tier::Month, Tier::Day][..], &[Tier::Day][..]] {
            for start in ends() {
                for end in ends() {
                    let range = Range { start, end };
                    let tiles = tiles(range, tiers);
                    for (tier, r) in &tiles {
                        if *tier != Tier::Quarter {
                            assert!(tiers.contains(tier), "{range:?}: {tiles:?}");
                            for b in [r.start, r.end].into_iter().flatten() {
                                assert_eq!(tier.bucket(b), b, "{range:?}: {tiles:?}");
                            }
                        }
                    }
                    let mut t = Utc.with_ymd_and_hms(2026, 9, 29, 0, 0, 0).unwrap();
                    while t < Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap() {
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
        }
        assert_eq!(
            tiles(Range::default(), &[Tier::Month, Tier::Day]),
            vec![(Tier::Month, Range::default())],
            "all time is the monthly tier alone"
        );
        assert_eq!(
            tiles(Range::default(), &[Tier::Day]),
            vec![(Tier::Day, Range::default())],
            "all time by day is the daily tier alone"
        );
        let day = |d: u32| Some(Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap());
        assert_eq!(
            tiles(
                Range {
                    start: day(3),
                    end: day(5)
                },
                &[Tier::Month, Tier::Day]
            ),
            vec![(
                Tier::Day,
                Range {
                    start: day(3),
                    end: day(5)
                }
            )],
            "two days within a month are days"
        );
    }

    #[test]
    fn days_are_utc_days_only_in_zones_without_an_offset() {
        assert!(is_utc("UTC") && is_utc("etc/utc") && is_utc("GMT"));
        assert!(!is_utc("America/Edmonton") && !is_utc("Asia/Kathmandu") && !is_utc("UTC+5"));
    }
}
