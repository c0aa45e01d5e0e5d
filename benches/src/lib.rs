//! Shared helpers of cinder's benchmarks.
//!
//! - [`rng`]: a small seeded PRNG (SplitMix64 seeding, xorshift64* stream) for bench inputs and
//!   synthetic weights; no `rand` crate, the same numbers on every machine.
//! - [`synth`]: random-weight Llama GGUF files with a real model's shape, vocabulary, metadata
//!   and llama-quantize's tensor-type mix (the `synth-model` binary).

pub mod rng;
pub mod synth;
