//! Counters the handlers and the compute thread share, `GET /metrics` in Prometheus' text
//! format, and the bounded admission of requests ([`Permit`]).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges; every field is updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Completion requests accepted.
    pub requests: AtomicU64,
    /// Completion requests answered to the end.
    pub requests_done: AtomicU64,
    /// Requests refused because the queue was full.
    pub requests_rejected: AtomicU64,
    /// Prompt tokens evaluated.
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens found in a slot's cache and not evaluated again.
    pub prompt_tokens_cached: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Time spent in forward passes.
    pub busy_nanos: AtomicU64,
    /// Requests on a slot now.
    pub processing: AtomicU64,
    /// Requests waiting for a slot now.
    pub waiting: AtomicU64,
    /// Positions in use in the slots' caches, and their capacity.
    pub kv_used: AtomicU64,
    pub kv_total: AtomicU64,
    /// Requests admitted and not yet finished (on a slot or waiting).
    pub in_flight: AtomicU64,
}

/// A place among the `--parallel + --queue` requests the server holds; given back on drop.
#[derive(Debug)]
pub struct Permit(Arc<Metrics>);

impl Metrics {
    /// A permit if fewer than `limit` requests are in flight.
    pub fn admit(self: &Arc<Self>, limit: u64) -> Option<Permit> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.requests.fetch_add(1, Ordering::Relaxed);
            Some(Permit(Arc::clone(self)))
        } else {
            self.requests_rejected.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let busy = get(&self.busy_nanos) as f64 / 1e9;
        let tokens = get(&self.prompt_tokens) + get(&self.generated_tokens);
        let per_second = if busy > 0.0 {
            tokens as f64 / busy
        } else {
            0.0
        };
        let (used, total) = (get(&self.kv_used), get(&self.kv_total));
        let ratio = if total > 0 {
            used as f64 / total as f64
        } else {
            0.0
        };
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "# HELP cinder_{name} {help}\n# TYPE cinder_{name} {kind}\ncinder_{name} {value}\n"
            );
        };
        let counters = [
            (
                "requests_total",
                "Completion requests accepted.",
                &self.requests,
            ),
            (
                "requests_finished_total",
                "Completion requests answered to the end.",
                &self.requests_done,
            ),
            (
                "requests_rejected_total",
                "Requests refused with 503 because the queue was full.",
                &self.requests_rejected,
            ),
            (
                "prompt_tokens_total",
                "Prompt tokens evaluated.",
                &self.prompt_tokens,
            ),
            (
                "prompt_tokens_cached_total",
                "Prompt tokens reused from a slot's cache.",
                &self.prompt_tokens_cached,
            ),
            (
                "tokens_predicted_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
        ];
        for (name, help, a) in counters {
            metric(name, "counter", help, get(a).to_string());
        }
        metric(
            "forward_seconds_total",
            "counter",
            "Time spent in forward passes.",
            format!("{busy:.6}"),
        );
        metric(
            "tokens_per_second",
            "gauge",
            "Prompt and generated tokens per second of forward-pass time.",
            format!("{per_second:.3}"),
        );
        metric(
            "requests_processing",
            "gauge",
            "Requests on a slot.",
            get(&self.processing).to_string(),
        );
        metric(
            "requests_waiting",
            "gauge",
            "Requests in the queue, waiting for a slot.",
            get(&self.waiting).to_string(),
        );
        metric(
            "kv_cache_tokens",
            "gauge",
            "Positions in use in the slots' KV caches.",
            used.to_string(),
        );
        metric(
            "kv_cache_usage_ratio",
            "gauge",
            "Fraction of the KV cache positions in use.",
            format!("{ratio:.6}"),
        );
        out
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
