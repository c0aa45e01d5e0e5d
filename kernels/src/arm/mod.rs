//! aarch64 kernels: NEON (`neon.rs`) and NEON + dotprod (`dotprod.rs`) go here, each module
//! defining the same kernel names as `crate::scalar`, then wired into `dispatch::Kernels::new`.
//! Not written yet: on aarch64 only [`crate::Isa::Scalar`] is available.
