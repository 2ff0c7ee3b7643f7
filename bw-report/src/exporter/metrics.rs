//! One scrape's figures in Prometheus' text format (version 0.0.4), written
//! by prometheus-client: names, `# HELP`/`# TYPE` lines and the escaping of
//! label values (vhosts are whatever clients sent as Host) are its job.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::cache::{Figures, Snapshot};

pub use prometheus_text::CONTENT_TYPE;

/// What one scrape shows.
#[derive(Debug)]
pub struct Exposition {
    pub snapshot: Snapshot,
    /// Unix time of the local midnight that starts the newest day with a row.
    pub newest_day_start: Option<i64>,
    /// Unix time of the newest flush in the ledger table, when readable.
    pub newest_write: Option<i64>,
}

/// The exposition as the body of a /metrics answer.
pub fn text(exposition: Exposition) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let vhosts = &self.snapshot.vhosts;
        per_vhost(
            &mut encoder,
            "bw_counter_vhost_bytes",
            "Bytes per vhost and direction, all days in the table summed",
            |f| [f.total_in, f.total_out],
            ConstCounter::new,
            vhosts,
        )?;
        per_vhost(
            &mut encoder,
            "bw_counter_vhost_today_bytes",
            "Bytes per vhost and direction on today's date (local time, as the module's day)",
            |f| [f.today_in, f.today_out],
            ConstGauge::new,
            vhosts,
        )?;
        let singles = [
            (
                "bw_counter_rows",
                "Rows in the table (one per vhost and day)",
                Some(i64::try_from(self.snapshot.rows).unwrap_or(i64::MAX)),
            ),
            (
                "bw_counter_newest_day_timestamp_seconds",
                "Start (local midnight) of the newest day that has a row",
                self.newest_day_start,
            ),
            (
                "bw_counter_newest_write_timestamp_seconds",
                "When the newest flush of any server committed (newest at in the ledger table)",
                self.newest_write,
            ),
        ];
        for (name, help, value) in singles {
            // A figure nobody can know (no ledger, an empty table) is left
            // out rather than shown as 0.
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// One family with a series per vhost and direction.
fn per_vhost<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Fn(&Figures) -> [u64; 2],
    metric: impl Fn(u64) -> M,
    vhosts: impl IntoIterator<Item = (&'a String, &'a Figures)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, metric(0).metric_type())?;
    for (vhost, figures) in vhosts {
        for (direction, value) in ["in", "out"].into_iter().zip(values(figures)) {
            let labels = [("vhost", vhost.as_str()), ("direction", direction)];
            metric(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(vhosts: &[(&str, Figures)]) -> Exposition {
        Exposition {
            snapshot: Snapshot {
                vhosts: vhosts.iter().map(|(v, f)| (v.to_string(), *f)).collect(),
                rows: 3,
                newest_day: None,
            },
            newest_day_start: Some(1_767_222_000),
            newest_write: None,
        }
    }

    #[test]
    fn the_families_and_their_types() {
        let figures = Figures {
            total_in: u64::MAX,
            total_out: 2,
            today_in: 0,
            today_out: 1,
        };
        let text = text(exposition(&[("www.example.org", figures)])).unwrap();
        assert_eq!(
            text,
            "# HELP bw_counter_vhost_bytes_total Bytes per vhost and direction, all days in the table summed\n\
             # TYPE bw_counter_vhost_bytes_total counter\n\
             bw_counter_vhost_bytes_total{vhost=\"www.example.org\",direction=\"in\"} 18446744073709551615\n\
             bw_counter_vhost_bytes_total{vhost=\"www.example.org\",direction=\"out\"} 2\n\
             # HELP bw_counter_vhost_today_bytes Bytes per vhost and direction on today's date (local time, as the module's day)\n\
             # TYPE bw_counter_vhost_today_bytes gauge\n\
             bw_counter_vhost_today_bytes{vhost=\"www.example.org\",direction=\"in\"} 0\n\
             bw_counter_vhost_today_bytes{vhost=\"www.example.org\",direction=\"out\"} 1\n\
             # HELP bw_counter_rows Rows in the table (one per vhost and day)\n\
             # TYPE bw_counter_rows gauge\n\
             bw_counter_rows 3\n\
             # HELP bw_counter_newest_day_timestamp_seconds Start (local midnight) of the newest day that has a row\n\
             # TYPE bw_counter_newest_day_timestamp_seconds gauge\n\
             bw_counter_newest_day_timestamp_seconds 1767222000\n",
            "exact integers; no line for the unknown newest write"
        );
    }

    /// The text format's three escapes in label values, and nothing else
    /// touched: whatever a vhost holds stays inside its quotes.
    #[test]
    fn hostile_vhosts_stay_inside_their_label() {
        let hostile = "a\"b\\c\nd{e}=f,# HELP x\tü";
        let text = text(exposition(&[(hostile, Figures::default())])).unwrap();
        let expected =
            r#"{vhost="a\"b\\c\nd{e}=f,# HELP x"#.to_string() + "\tü\",direction=\"in\"} 0";
        assert!(text.contains(&expected), "{text}");
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("bw_counter_"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn an_empty_table_is_families_without_series() {
        let mut e = exposition(&[]);
        e.snapshot.rows = 0;
        e.newest_day_start = None;
        e.newest_write = Some(1_700_000_000);
        let text = text(e).unwrap();
        assert!(!text.contains("vhost="), "{text}");
        assert!(text.contains("\nbw_counter_rows 0\n"), "{text}");
        assert!(!text.contains("newest_day"), "{text}");
        assert!(text.ends_with("bw_counter_newest_write_timestamp_seconds 1700000000\n"));
    }
}
