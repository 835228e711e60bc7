//! Charts drawn on the server as SVG: no script, nothing fetched. Each chart has a title for
//! assistive technology and, beside or under it, a table of the same figures.

use maud::{Markup, html};

/// One bar: its label, its value (for drawing) and the value as shown.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub shown: String,
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD_LEFT: f64 = 8.0;
const PAD_BOTTOM: f64 = 6.0;
const PAD_TOP: f64 = 6.0;
/// The widest a day's column gets.
const MAX_SLOT: f64 = 48.0;

/// Vertical bars over time (net sales by day): bars above the axis for sales, below for a day
/// whose refunds exceed its sales.
pub fn columns(title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let min = bars.iter().map(|b| b.value).fold(0.0_f64, f64::min);
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let plot_h = H - PAD_TOP - PAD_BOTTOM;
    let zero_y = PAD_TOP + plot_h * (max / span);
    let n = bars.len().max(1) as f64;
    // A few days are drawn as narrow columns in the middle, not as walls.
    let slot = ((W - PAD_LEFT * 2.0) / n).min(MAX_SLOT);
    let left = PAD_LEFT + ((W - PAD_LEFT * 2.0) - slot * n) / 2.0;
    let gap = if slot > 6.0 { slot * 0.2 } else { 0.0 };
    let highest = bars
        .iter()
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .map(|b| b.shown.as_str())
        .unwrap_or("");
    // The labels are HTML around the drawing, so they keep their shape at any width.
    html! {
        div.chart {
            p.chart-max { "highest: " (highest) }
            svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title)
                preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                line.axis x1=(PAD_LEFT) x2=(W - PAD_LEFT) y1=(r(zero_y)) y2=(r(zero_y)) {}
                @for (i, b) in bars.iter().enumerate() {
                    @let x = left + slot * i as f64 + gap / 2.0;
                    @let h = (b.value.abs() / span * plot_h).max(if b.value == 0.0 { 0.0 } else { 1.0 });
                    @let y = if b.value >= 0.0 { zero_y - h } else { zero_y };
                    rect class=(if b.value >= 0.0 { "bar" } else { "bar neg" })
                        x=(r(x)) y=(r(y)) width=(r((slot - gap).max(0.5))) height=(r(h)) {
                        title { (b.label) ": " (b.shown) }
                    }
                }
            }
            @if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
                p.chart-ticks {
                    @if bars.len() > 1 { (first.label) " to " (last.label) } @else { (first.label) }
                }
            }
        }
    }
}

/// Horizontal bars, one per table row, with the figures beside them: the chart and its table
/// are one element. `head` names the columns after the label; each row's `cells` fill them.
pub fn bar_table(
    caption: &str,
    head: &[&str],
    rows: &[(Bar, Option<String>, Vec<String>)],
) -> Markup {
    let max = rows
        .iter()
        .map(|(b, ..)| b.value.abs())
        .fold(0.0_f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    html! {
        div.scroll {
            table.bars {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" class="barcol" { span.sr { "Share" } }
                        @for h in head { th scope="col" class="num" { (h) } }
                    }
                }
                tbody {
                    @for (bar, link, cells) in rows {
                        tr {
                            th scope="row" {
                                @if let Some(href) = link { a href=(href) { (bar.label) } }
                                @else { (bar.label) }
                            }
                            td.barcol {
                                svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img"
                                    aria-label={ (bar.label) ": " (bar.shown) } {
                                    rect class=(if bar.value >= 0.0 { "bar" } else { "bar neg" })
                                        x="0" y="1" height="8"
                                        width=(r(bar.value.abs() / max * 100.0)) {}
                                }
                            }
                            @for c in cells { td.num { (c) } }
                        }
                    }
                }
            }
        }
    }
}

/// A coordinate with two decimals (shorter SVG, same picture).
fn r(v: f64) -> String {
    format!("{:.2}", if v.is_finite() { v } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            // Shown figures come from decimals, which have no NaN.
            shown: if value.is_finite() {
                format!("{value:.2} CAD")
            } else {
                "0.00 CAD".into()
            },
        }
    }

    #[test]
    fn a_column_chart_has_a_bar_and_a_title_per_day() {
        let svg = columns(
            "Net sales",
            &[bar("2026-11-27", 100.0), bar("2026-11-28", -20.0)],
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("<title>2026-11-27: 100.00 CAD</title>"));
        assert!(svg.contains("bar neg"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn charts_of_nothing_or_zeros_draw_without_nan() {
        for bars in [vec![], vec![bar("a", 0.0)], vec![bar("a", f64::NAN)]] {
            let svg = columns("t", &bars).into_string();
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        let table =
            bar_table("c", &["x"], &[(bar("a", 0.0), None, vec!["1".into()])]).into_string();
        assert!(!table.contains("NaN"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = columns("t", &[bar("<script>", 1.0)]).into_string();
        assert!(!svg.contains("<script>"));
    }
}
