//! The dashboard's charts, drawn as SVG on the server by plotters from the monitor's samples.

use std::error::Error;

use plotters::prelude::*;
use time::OffsetDateTime;

use crate::monitor::Sample;

/// Every chart the dashboard shows: its path name and title.
pub(super) const CHARTS: &[(&str, &str)] = &[
    ("requests", "Requests per second, by route"),
    ("latency", "p50 / p95 / p99 latency (ms), busiest routes"),
    ("statuses", "4xx, 5xx, 429, 503 and time-outs per second"),
    ("cache", "Cache hit ratio per layer"),
    ("pool", "Database connections"),
    (
        "hashing",
        "Password hashing: queue depth and mean time (ms)",
    ),
    (
        "limits",
        "Rate-limit refusals per second, invalidation lag (ms)",
    ),
];

/// Routes shown on the per-route charts, busiest first; more would make a legend nobody reads.
const ROUTES_SHOWN: usize = 5;
/// The latency chart draws three lines a route.
const LATENCY_ROUTES_SHOWN: usize = 3;

type Series = (String, Vec<(f64, f64)>);

/// The chart `name` over `samples`, or `None` for an unknown name.
pub(super) fn render(
    name: &str,
    samples: &[Sample],
    now: OffsetDateTime,
) -> Option<Result<String, Box<dyn Error + Send + Sync>>> {
    let (_, title) = CHARTS.iter().find(|(chart, _)| *chart == name)?;
    let series = series(name, samples, now);
    Some(draw(title, &series))
}

fn seconds_ago(sample: &Sample, now: OffsetDateTime) -> f64 {
    sample
        .at
        .map_or(0.0, |at| -(now - at).as_seconds_f64().max(0.0))
}

fn series(name: &str, samples: &[Sample], now: OffsetDateTime) -> Vec<Series> {
    let gauge = |label: &str, key: &str| -> Series {
        let points = samples
            .iter()
            .filter_map(|s| Some((seconds_ago(s, now), *s.gauges.get(key)?)))
            .collect();
        (label.to_string(), points)
    };
    match name {
        "requests" | "latency" => {
            let mut totals: Vec<(String, f64)> = Vec::new();
            for sample in samples {
                for (route, numbers) in &sample.routes {
                    match totals.iter_mut().find(|(known, _)| known == route) {
                        Some((_, total)) => *total += numbers.rate,
                        None => totals.push((route.clone(), numbers.rate)),
                    }
                }
            }
            totals.sort_by(|a, b| b.1.total_cmp(&a.1));
            totals.truncate(if name == "requests" {
                ROUTES_SHOWN
            } else {
                LATENCY_ROUTES_SHOWN
            });
            let mut out = Vec::new();
            for (route, _) in totals {
                let pick = |f: fn(&crate::monitor::RouteSample) -> f64| -> Vec<(f64, f64)> {
                    samples
                        .iter()
                        .map(|s| (seconds_ago(s, now), s.routes.get(&route).map_or(0.0, f)))
                        .collect()
                };
                if name == "requests" {
                    out.push((route.clone(), pick(|r| r.rate)));
                } else {
                    out.push((format!("p50 {route}"), pick(|r| r.p50_ms)));
                    out.push((format!("p95 {route}"), pick(|r| r.p95_ms)));
                    out.push((format!("p99 {route}"), pick(|r| r.p99_ms)));
                }
            }
            out
        }
        "statuses" => ["4xx", "5xx", "429", "503", "timeout"]
            .into_iter()
            .map(|status| {
                let points = samples
                    .iter()
                    .map(|s| {
                        let rate = s.statuses.get(status).copied().unwrap_or_default();
                        (seconds_ago(s, now), rate)
                    })
                    .collect();
                (status.to_string(), points)
            })
            .collect(),
        "cache" => vec![
            gauge("L1 (in process)", "cache_hit_ratio_l1"),
            gauge("L2 (Redis)", "cache_hit_ratio_l2"),
        ],
        "pool" => {
            let mut out = vec![
                gauge("pool in use", "db_pool_in_use"),
                gauge("pool idle", "db_pool_idle"),
                gauge("waiting", "db_pool_waiting"),
            ];
            for state in ["active", "idle", "idle in transaction"] {
                let series = gauge(&format!("server: {state}"), &format!("pg_{state}"));
                if !series.1.is_empty() {
                    out.push(series);
                }
            }
            out
        }
        "hashing" => vec![
            gauge("queue depth", "hash_queue_depth"),
            gauge("mean hash time (ms)", "hash_ms"),
        ],
        _ => vec![
            gauge("refusals per second", "rate_limit_refusals"),
            gauge("invalidation lag (ms)", "invalidation_lag_ms"),
        ],
    }
}

fn draw(title: &str, series: &[Series]) -> Result<String, Box<dyn Error + Send + Sync>> {
    let top = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(-900.0_f64..0.0_f64, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds ago")
            .x_label_formatter(&|x| format!("{:.0}", x.abs()))
            .light_line_style(WHITE)
            .draw()?;
        for (index, (label, points)) in series.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}
