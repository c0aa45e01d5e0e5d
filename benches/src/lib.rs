//! Shared helpers of cinder's benchmarks.
