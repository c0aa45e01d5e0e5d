//! Arbitrary bytes as one safetensors shard through the converter's reader: the header is
//! validated, then every row of every tensor is read and converted to f32 as the converter
//! does.

#![no_main]

use std::path::Path;

use cinder_convert::hf::{read_shard, tensor_rows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tensors) = read_shard(data, Path::new("fuzz.safetensors"), 0) else {
        return;
    };
    let mut out = Vec::new();
    for (_, t) in &tensors {
        let rows = t.shape.first().copied().unwrap_or(1);
        let bytes = tensor_rows(data, t, 0..rows);
        assert_eq!(bytes.len(), t.range.len());
        out.resize(bytes.len() / t.dtype.size(), 0.0f32);
        t.dtype.to_f32(bytes, &mut out);
        std::hint::black_box(&out);
    }
});
