//! Parse arbitrary bytes as GGUF; on success touch every tensor's data and every getter.
//! A panic or out-of-bounds read here is a bug in the parser.

#![no_main]

use cinder_quant::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    let mut sum = 0usize;
    for t in g.tensors() {
        let bytes = g.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.size());
        sum = sum.wrapping_add(bytes.iter().map(|&b| b as usize).sum::<usize>());
        assert_eq!(
            g.tensor_bytes(t.name()).map(<[u8]>::len).ok(),
            Some(bytes.len())
        );
        sum = sum.wrapping_add(t.n_elements() as usize);
    }
    for (key, value) in g.metadata() {
        assert!(g.get(key).is_some());
        sum = sum.wrapping_add(value.type_description().len());
        sum += g.get_u32(key).is_ok() as usize
            + g.get_i32(key).is_ok() as usize
            + g.get_u64(key).is_ok() as usize
            + g.get_f32(key).is_ok() as usize
            + g.get_bool(key).is_ok() as usize
            + g.get_str(key).map_or(0, str::len)
            + g.get_str_array(key).map_or(0, <[String]>::len)
            + g.get_f32_array(key).map_or(0, <[f32]>::len)
            + g.get_i32_array(key).map_or(0, <[i32]>::len)
            + g.get_array(key).map_or(0, |a| a.depth());
    }
    std::hint::black_box(sum);
});
