//! `cinder info` and the `--kernels` / `CINDER_KERNELS` override.

mod common;

use common::*;

#[test]
fn info_lists_features_available_sets_and_the_detected_choice() {
    let o = cinder(&["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let available: Vec<String> = cinder_kernels::Kernels::available()
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    assert!(
        text.contains(&format!("available: {}", available.join(" "))),
        "{text}"
    );
    let best = cinder_kernels::Kernels::detect().isa().name();
    assert!(
        text.contains(&format!("kernels:   {best} (detected)")),
        "{text}"
    );
    assert!(text.contains("features:"), "{text}");
}

#[test]
fn every_available_kernel_set_can_be_forced_by_flag_or_environment() {
    for isa in cinder_kernels::Kernels::available() {
        let o = cinder(&["--kernels", isa.name(), "info"]);
        assert!(
            stdout(&o).contains(&format!("kernels:   {} (--kernels)", isa.name())),
            "{}",
            stdout(&o)
        );
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_cinder"))
            .arg("info")
            .env("CINDER_KERNELS", isa.name())
            .output()
            .unwrap();
        assert!(
            stdout(&o).contains(&format!("kernels:   {} (CINDER_KERNELS)", isa.name())),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn asking_for_a_kernel_set_the_cpu_lacks_or_an_unknown_one_is_an_error() {
    let missing = cinder_kernels::Isa::ALL
        .into_iter()
        .find(|i| !cinder_kernels::Kernels::available().contains(i))
        .expect("some Isa of another architecture is always missing");
    // The flag is global: it is checked for every subcommand.
    let o = cinder(&["inspect", "--kernels", missing.name(), "nonexistent.gguf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not supported by this CPU"),
        "{}",
        stderr(&o)
    );
    let o = cinder(&["--kernels", "sse9", "info"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown kernel set"), "{}", stderr(&o));
}
