//! Bit-exactness of the reference quantizers against ggml / gguf-py (../shared/fixtures/quant).
//!
//! For every input array and every `<TYPE>.bin` found beside it whose type cinder has a
//! reference for: quantizing the input gives the same bytes, and dequantizing those bytes
//! gives the same f32 bits as `<TYPE>.deq.f32`. Where ggml and gguf-py differ (the `-0.0`
//! blocks of Q4_0/Q5_0 in `mixed`), the `.ggml.bin` file is ggml's output and the target.

use cinder_quant::GgmlType;
use cinder_quant::fixtures;
use cinder_quant::reference::{dequantize, quantize};

const ARRAYS: [&str; 6] = ["normal", "uniform", "zeros", "outlier", "tiny", "mixed"];

/// Types with a `.bin` file in `dir`, split into (types cinder has a reference for, others).
fn types_in(dir: &str) -> (Vec<GgmlType>, Vec<String>) {
    let path = fixtures::path(dir);
    let (mut known, mut other) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(&path).expect("fixture folder readable") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        let Some(stem) = name.strip_suffix(".bin") else {
            continue;
        };
        if stem.ends_with(".ggml") {
            continue;
        }
        match GgmlType::from_name(stem) {
            Some(t) if t.has_reference() => known.push(t),
            _ => other.push(stem.to_string()),
        }
    }
    known.sort();
    other.sort();
    (known, other)
}

fn first_difference(a: &[u8], b: &[u8], block: usize) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i} (block {})", i / block),
        None => format!("lengths {} vs {}", a.len(), b.len()),
    }
}

#[test]
fn quantizers_match_ggml_bytes_for_every_fixture_type() {
    let mut checked = Vec::new();
    for array in ARRAYS {
        let input = fixtures::read_f32(&format!("quant/inputs/{array}.f32"));
        let (types, _) = types_in(&format!("quant/{array}"));
        assert!(!types.is_empty(), "no quantized fixtures for {array}");
        for ty in types {
            let ggml = format!("quant/{array}/{}.ggml.bin", ty.name());
            let rel = if fixtures::root().join(&ggml).exists() {
                ggml
            } else {
                format!("quant/{array}/{}.bin", ty.name())
            };
            let want = fixtures::read(&rel);
            let mut got = vec![0u8; ty.bytes_for(input.len() as u64).unwrap() as usize];
            quantize(ty, &input, &mut got).unwrap();
            assert!(
                got == want,
                "{ty} quantization of {array} differs from {rel}: {}",
                first_difference(&got, &want, ty.type_size())
            );
            checked.push(format!("{array}/{ty}"));
        }
    }
    eprintln!("bit-exact quantization: {}", checked.join(" "));
}

#[test]
fn dequantizers_match_ggml_values_for_every_fixture_type() {
    for dir in ARRAYS
        .iter()
        .map(|a| format!("quant/{a}"))
        .chain(["quant/dequant_only".into()])
    {
        let (types, _) = types_in(&dir);
        for ty in types {
            let bytes = fixtures::read(&format!("{dir}/{}.bin", ty.name()));
            let want = fixtures::read_f32(&format!("{dir}/{}.deq.f32", ty.name()));
            let mut got = vec![0f32; want.len()];
            dequantize(ty, &bytes, &mut got).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits(),
                    "{dir}/{ty}: value {i} (block {}) is {g:e}, gguf-py says {w:e}",
                    i / ty.block_size()
                );
            }
        }
    }
}

#[test]
fn the_ggml_variant_files_differ_from_gguf_py_only_in_negative_zero_scales() {
    // Guards the choice above: ggml writes d = -0.0 for all -0.0 blocks, gguf-py +0.0.
    for ty in ["Q4_0", "Q5_0"] {
        let ggml = fixtures::read(&format!("quant/mixed/{ty}.ggml.bin"));
        let py = fixtures::read(&format!("quant/mixed/{ty}.bin"));
        let size = GgmlType::from_name(ty).unwrap().type_size();
        let differing: Vec<usize> = (0..ggml.len() / size)
            .filter(|b| ggml[b * size..(b + 1) * size] != py[b * size..(b + 1) * size])
            .collect();
        assert!(
            !differing.is_empty(),
            "{ty}: expected ggml and gguf-py to differ"
        );
        for b in differing {
            assert_eq!(
                &ggml[b * size..b * size + 2],
                &[0x00, 0x80],
                "{ty} block {b}: ggml d"
            );
            assert_eq!(
                &py[b * size..b * size + 2],
                &[0x00, 0x00],
                "{ty} block {b}: gguf-py d"
            );
            assert_eq!(
                ggml[b * size + 2..(b + 1) * size],
                py[b * size + 2..(b + 1) * size]
            );
        }
    }
}

#[test]
fn every_type_the_fixtures_hold_is_covered_or_named() {
    // Types in the fixtures that cinder does not implement: none, so the two tests above check
    // every type the fixtures hold.
    let mut others: Vec<String> = ARRAYS
        .iter()
        .flat_map(|a| types_in(&format!("quant/{a}")).1)
        .collect();
    others.sort();
    others.dedup();
    assert_eq!(others, [""; 0], "fixture types without a cinder reference");
}
