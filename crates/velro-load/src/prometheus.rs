//! Reads the server's GET /metrics (Prometheus text) and keeps the few series the report uses:
//! cache lookups, pool gauges, hash time and queue depth. No general exposition parser.

use serde::Serialize;

/// The figures of one scrape.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    pub l1_hits: f64,
    pub l1_misses: f64,
    pub l2_hits: f64,
    pub l2_misses: f64,
    /// L1 misses that waited for another request's read (velro_cache_coalesced_total).
    pub coalesced: f64,
    pub pool_in_use: f64,
    pub pool_idle: f64,
    pub hash_queue_depth: f64,
    pub hash_seconds_sum: f64,
    pub hash_count: f64,
    pub http_requests: f64,
}

/// What changed between two scrapes, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsDelta {
    pub before: Snapshot,
    pub after: Snapshot,
    /// Session lookups during the run (every one starts at L1).
    pub cache_lookups: f64,
    /// (L1 hits + L2 hits) / lookups; `None` when there was no lookup (cache off).
    pub cache_hit_ratio: Option<f64>,
    /// Lookups that reached the database (L1 miss, no L2 hit, not coalesced into another's).
    pub cache_db_lookups: f64,
    pub hashes: f64,
    /// Mean of velro_hash_duration_seconds over the run, in milliseconds.
    pub hash_mean_ms: Option<f64>,
}

impl Snapshot {
    /// Parses the exposition text; unknown lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut snapshot = Snapshot::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| label_value(labels, key);
            match name {
                "velro_cache_lookups_total" => {
                    let slot = match (label("layer"), label("result")) {
                        (Some("l1"), Some("hit")) => &mut snapshot.l1_hits,
                        (Some("l1"), Some("miss")) => &mut snapshot.l1_misses,
                        (Some("l2"), Some("hit")) => &mut snapshot.l2_hits,
                        (Some("l2"), Some("miss")) => &mut snapshot.l2_misses,
                        _ => continue,
                    };
                    *slot += value;
                }
                "velro_cache_coalesced_total" => snapshot.coalesced += value,
                "velro_db_pool_connections" => match label("state") {
                    Some("in_use") => snapshot.pool_in_use = value,
                    Some("idle") => snapshot.pool_idle = value,
                    _ => {}
                },
                "velro_hash_queue_depth" => snapshot.hash_queue_depth = value,
                "velro_hash_duration_seconds_sum" => snapshot.hash_seconds_sum += value,
                "velro_hash_duration_seconds_count" => snapshot.hash_count += value,
                "velro_http_requests_total" => snapshot.http_requests += value,
                _ => {}
            }
        }
        snapshot
    }
}

fn label_value<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name.trim() == key).then(|| value.trim().trim_matches('"'))
    })
}

impl MetricsDelta {
    pub fn between(before: Snapshot, after: Snapshot) -> Self {
        let l1_hits = after.l1_hits - before.l1_hits;
        let l1_misses = after.l1_misses - before.l1_misses;
        let l2_hits = after.l2_hits - before.l2_hits;
        let coalesced = after.coalesced - before.coalesced;
        let lookups = l1_hits + l1_misses;
        let hashes = after.hash_count - before.hash_count;
        let hash_seconds = after.hash_seconds_sum - before.hash_seconds_sum;
        Self {
            cache_lookups: lookups,
            cache_hit_ratio: (lookups > 0.0).then(|| (l1_hits + l2_hits) / lookups),
            cache_db_lookups: (l1_misses - l2_hits - coalesced).max(0.0),
            hashes,
            hash_mean_ms: (hashes > 0.0).then(|| hash_seconds / hashes * 1000.0),
            before,
            after,
        }
    }
}

/// Fetches and parses GET {host}/metrics.
pub async fn scrape(client: &reqwest::Client, host: &str) -> Result<Snapshot, reqwest::Error> {
    let text = client
        .get(format!("{host}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Snapshot::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# TYPE velro_cache_lookups_total counter
velro_cache_lookups_total{layer="l1",result="hit"} 990
velro_cache_lookups_total{layer="l1",result="miss"} 10
velro_cache_lookups_total{layer="l2",result="hit"} 4
velro_cache_lookups_total{layer="l2",result="miss"} 6
velro_db_pool_connections{state="idle"} 3
velro_db_pool_connections{state="in_use"} 1
velro_hash_duration_seconds_sum 0.5
velro_hash_duration_seconds_count 10
velro_http_requests_total{method="GET",route="/api/v1/auth/me",status="200"} 1000
velro_http_requests_total{method="GET",route="/health",status="200"} 5
"#;

    #[test]
    fn the_hit_ratio_counts_l1_and_l2_hits_over_all_lookups() {
        let after = Snapshot::parse(SAMPLE);
        assert_eq!(after.l1_hits, 990.0);
        assert_eq!(after.pool_in_use, 1.0);
        assert_eq!(after.http_requests, 1005.0);
        let delta = MetricsDelta::between(Snapshot::default(), after);
        assert_eq!(delta.cache_lookups, 1000.0);
        assert_eq!(delta.cache_hit_ratio, Some(0.994));
        assert_eq!(delta.cache_db_lookups, 6.0);
        assert_eq!(delta.hash_mean_ms, Some(50.0));
    }

    #[test]
    fn misses_that_waited_for_another_read_are_not_database_lookups() {
        let text = format!("{SAMPLE}velro_cache_coalesced_total 3\n");
        let delta = MetricsDelta::between(Snapshot::default(), Snapshot::parse(&text));
        assert_eq!(delta.cache_lookups, 1000.0);
        assert_eq!(delta.cache_db_lookups, 3.0);
    }

    #[test]
    fn no_lookup_gives_no_ratio() {
        let delta = MetricsDelta::between(Snapshot::default(), Snapshot::default());
        assert_eq!(delta.cache_hit_ratio, None);
    }
}
