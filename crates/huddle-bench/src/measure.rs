//! Measurement shared by the scenarios: time stamps embedded in payloads and
//! found without parsing the message, per-receiver loss/duplicate tracking,
//! latency percentiles, and the fan-out report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::report::{mib, Summary};

/// What a `"key":"…"` stamp in a delivery says.
#[derive(Debug, PartialEq, Eq)]
pub enum Stamp {
    /// `"p"`: a readiness probe sent before the measured window.
    Probe,
    /// `"{seq}:{micros}"`: a measured publication and its send time.
    Data { seq: usize, sent: u64 },
}

/// Finds `needle` (e.g. `"data":"`, quotes included) in `text` and reads the
/// stamp that follows, up to the closing quote. One substring search, no JSON
/// parsing: the client must not be the bottleneck.
pub fn stamp(text: &str, needle: &str) -> Option<Stamp> {
    let start = text.find(needle)? + needle.len();
    let rest = text.get(start..)?;
    let value = rest.get(..rest.find('"')?)?;
    if value == "p" {
        return Some(Stamp::Probe);
    }
    let (seq, sent) = value.split_once(':')?;
    Some(Stamp::Data {
        seq: seq.parse().ok()?,
        sent: sent.parse().ok()?,
    })
}

/// Deliveries of `total` numbered publications to many receivers: counts,
/// duplicates, and every receipt's latency in microseconds.
pub struct Deliveries {
    t0: Instant,
    total: usize,
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    /// Receivers that have seen a probe (or any publication).
    pub ready: AtomicU64,
    /// When the latest publication was received (this process's clock, µs).
    last: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

impl Deliveries {
    pub fn new(total: usize, receivers: usize) -> Deliveries {
        Deliveries {
            t0: Instant::now(),
            total,
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            last: AtomicU64::new(0),
            latencies: Mutex::new(Vec::with_capacity(total.saturating_mul(receivers))),
        }
    }

    /// This process's clock, in microseconds since the collector was made:
    /// what publishers stamp and receivers compare against.
    pub fn now_micros(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// State for one receiver.
    pub fn tracker(&self) -> Tracker {
        Tracker {
            seen: vec![false; self.total],
            mine: Vec::with_capacity(self.total),
            ready: false,
            unreported: 0,
            last: 0,
        }
    }

    /// Every recorded latency, sorted.
    pub fn sorted_latencies(&self) -> Vec<u64> {
        let mut l = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        l.sort_unstable();
        l
    }
}

/// One receiver's view: which publications it got, and their latencies.
///
/// The shared counters are touched once per [`REPORT_EVERY`] receipts and at
/// the end, not per receipt: receivers on different cores would otherwise
/// contend for them on every message.
pub struct Tracker {
    seen: Vec<bool>,
    mine: Vec<u64>,
    ready: bool,
    /// Receipts not yet added to `Deliveries::received`.
    unreported: u64,
    /// The latest receipt (µs).
    last: u64,
}

/// Receipts a tracker counts before adding them to the shared total.
const REPORT_EVERY: u64 = 32;

impl Tracker {
    /// Records a stamp; true once this receiver has every publication.
    pub fn record(&mut self, d: &Deliveries, s: Stamp) -> bool {
        if !self.ready {
            self.ready = true;
            d.ready.fetch_add(1, Ordering::Relaxed);
        }
        let Stamp::Data { seq, sent } = s else {
            return false;
        };
        let now = d.now_micros();
        if seq < self.seen.len() && !self.seen[seq] {
            self.seen[seq] = true;
            self.mine.push(now.saturating_sub(sent));
            self.last = now;
            self.unreported += 1;
            if self.unreported == REPORT_EVERY {
                self.report(d);
            }
        } else {
            d.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        let done = self.mine.len() == d.total;
        if done {
            self.report(d);
        }
        done
    }

    fn report(&mut self, d: &Deliveries) {
        d.received.fetch_add(self.unreported, Ordering::Relaxed);
        d.last.fetch_max(self.last, Ordering::Relaxed);
        self.unreported = 0;
    }

    /// Hands this receiver's latencies to the collector.
    pub fn finish(mut self, d: &Deliveries) {
        self.report(d);
        if let Ok(mut l) = d.latencies.lock() {
            l.extend(self.mine);
        }
    }
}

/// A receiver's tracker that hands its figures to the collector however its
/// task ends, an abort included (the scenarios stop their readers by
/// aborting them: a stop signal polled beside every read cost a shared lock
/// per message).
pub struct Receiver {
    tracker: Option<Tracker>,
    d: std::sync::Arc<Deliveries>,
}

impl Receiver {
    pub fn new(d: std::sync::Arc<Deliveries>) -> Receiver {
        Receiver {
            tracker: Some(d.tracker()),
            d,
        }
    }

    /// Records a stamp; true once this receiver has every publication.
    pub fn record(&mut self, s: Stamp) -> bool {
        match self.tracker.as_mut() {
            Some(t) => t.record(&self.d, s),
            None => false,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.finish(&self.d);
        }
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// p50 / p99 / p999 / max of sorted microseconds, in milliseconds.
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(sorted: &[u64]) -> Percentiles {
        Percentiles {
            p50: percentile(sorted, 0.5),
            p99: percentile(sorted, 0.99),
            p999: percentile(sorted, 0.999),
            max: percentile(sorted, 1.0),
        }
    }

    pub fn human(&self) -> String {
        format!(
            "p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}",
            self.p50, self.p99, self.p999, self.max
        )
    }

    pub fn add_to(&self, s: &mut Summary) {
        s.num("p50_ms", self.p50, 3)
            .num("p99_ms", self.p99, 3)
            .num("p999_ms", self.p999, 3)
            .num("max_ms", self.max, 3);
    }
}

/// What a fan-out run measured.
pub struct FanoutOutcome<'a> {
    pub scenario: &'a str,
    pub target: &'a str,
    pub subscribers: usize,
    pub rate: u64,
    pub seconds: u64,
    /// When the first publication was sent ([`Deliveries::now_micros`]).
    pub started_at: u64,
    /// Seconds the publisher took to send everything.
    pub publish_secs: f64,
    /// How long after the last publication deliveries were still awaited.
    pub drain_secs: u64,
    /// Publications the server refused (rate limits, errors).
    pub refused: u64,
    /// Subscribers whose connection ended before the end.
    pub disconnected: u64,
    pub server_cpu: Option<f64>,
    pub client_cpu: Option<f64>,
    pub server_rss: Option<u64>,
}

impl FanoutOutcome<'_> {
    /// Prints the human lines and the RESULT line.
    pub fn print(&self, d: &Deliveries) {
        let got = d.received.load(Ordering::Relaxed);
        let dup = d.duplicates.load(Ordering::Relaxed);
        let expected = (self.subscribers * d.total()) as u64;
        let l = Percentiles::of(&d.sorted_latencies());
        // Throughput over the time deliveries took: from the first publication
        // to the last receipt (not shorter than the publishing itself).
        let last = d.last.load(Ordering::Relaxed);
        let receive_secs = (last.saturating_sub(self.started_at) as f64 / 1e6)
            .max(self.publish_secs)
            .max(1e-3);
        let per_sec = got as f64 / receive_secs;
        println!("scenario        {} ({})", self.scenario, self.target);
        println!("subscribers     {}", self.subscribers);
        println!(
            "offered         {} msgs/s x {} = {} deliveries/s for {} s",
            self.rate,
            self.subscribers,
            self.rate * self.subscribers as u64,
            self.seconds
        );
        println!(
            "delivered       {got} of {expected} ({per_sec:.0}/s over {receive_secs:.1} s from the first publication to the last receipt; publishing took {:.1} s)",
            self.publish_secs
        );
        println!(
            "refused         {} publications (answered with an error)",
            self.refused
        );
        println!(
            "lost            {} deliveries (not received within {} s after the last publication)",
            expected - got.min(expected),
            self.drain_secs
        );
        println!("duplicated      {dup}");
        println!("disconnected    {} subscribers", self.disconnected);
        println!("latency ms      {}", l.human());
        if let Some(c) = self.server_cpu {
            println!("server cpu      {:.0}% of one core", c * 100.0);
        }
        if let Some(c) = self.client_cpu {
            println!("client cpu      {:.0}% of one core", c * 100.0);
        }
        if let Some(rss) = self.server_rss {
            println!("server rss      {:.1} MiB", mib(rss));
        }
        let mut s = Summary::new(self.scenario);
        s.add("target", self.target)
            .add("subscribers", self.subscribers)
            .add("rate", self.rate)
            .add("seconds", self.seconds)
            .add("expected", expected)
            .add("delivered", got)
            .num("deliveries_per_s", per_sec, 0)
            .num("receive_s", receive_secs, 1)
            .add("lost", expected - got.min(expected))
            .add("dup", dup)
            .add("refused", self.refused)
            .add("disconnected", self.disconnected);
        l.add_to(&mut s);
        s.opt("server_cpu_pct", self.server_cpu.map(|c| c * 100.0), 0)
            .opt("client_cpu_pct", self.client_cpu.map(|c| c * 100.0), 0)
            .opt("server_rss_mib", self.server_rss.map(mib), 1);
        s.print();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let t = r#"{"data":"12:3456","event":"b","pipe":"web_bench"}"#;
        assert_eq!(
            stamp(t, "\"data\":\""),
            Some(Stamp::Data {
                seq: 12,
                sent: 3456
            })
        );
        let t =
            r#"42["conversation-broadcast",{"action":"bench","userId":"u","data":{"bench":"p"}}]"#;
        assert_eq!(stamp(t, "\"bench\":\""), Some(Stamp::Probe));
        assert_eq!(stamp("42[\"x\",{}]", "\"bench\":\""), None);
    }

    #[test]
    fn tracker_counts_duplicates() {
        let d = Deliveries::new(2, 1);
        let mut t = d.tracker();
        assert!(!t.record(&d, Stamp::Data { seq: 0, sent: 0 }));
        assert!(!t.record(&d, Stamp::Data { seq: 0, sent: 0 }));
        assert!(t.record(&d, Stamp::Data { seq: 1, sent: 0 }));
        t.finish(&d);
        assert_eq!(d.received.load(Ordering::Relaxed), 2);
        assert_eq!(d.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(d.sorted_latencies().len(), 2);
    }
}
