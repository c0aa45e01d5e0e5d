//! `cinder info`: the CPU features cinder sees and the kernel set it runs.

use anyhow::Result;
use cinder_kernels::{Kernels, cpu_features};

pub fn run(kernels: &Kernels, chosen_by: &str) -> Result<()> {
    println!("cinder {}", env!("CARGO_PKG_VERSION"));
    println!("arch:      {}", std::env::consts::ARCH);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("threads:   {threads} available");
    let features: Vec<String> = cpu_features()
        .into_iter()
        .map(|(name, on)| format!("{name}{}", if on { "" } else { " (no)" }))
        .collect();
    println!("features:  {}", features.join(" "));
    let available: Vec<&str> = Kernels::available().iter().map(|i| i.name()).collect();
    println!("available: {}", available.join(" "));
    println!("kernels:   {} ({chosen_by})", kernels.isa().name());
    Ok(())
}
