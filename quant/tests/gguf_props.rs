//! Property tests of the GGUF container: write -> read round trips over random metadata (every
//! value type, nested arrays) and random tensors, and "never panics" over mutated files.

use cinder_quant::GgmlType;
use cinder_quant::gguf::{Array, Gguf, GgufWriter, Value, keys};
use proptest::prelude::*;

fn leaf_array() -> impl Strategy<Value = Array> {
    let n = 0..6usize;
    prop_oneof![
        prop::collection::vec(any::<u8>(), n.clone()).prop_map(Array::U8),
        prop::collection::vec(any::<i8>(), n.clone()).prop_map(Array::I8),
        prop::collection::vec(any::<u16>(), n.clone()).prop_map(Array::U16),
        prop::collection::vec(any::<i16>(), n.clone()).prop_map(Array::I16),
        prop::collection::vec(any::<u32>(), n.clone()).prop_map(Array::U32),
        prop::collection::vec(any::<i32>(), n.clone()).prop_map(Array::I32),
        prop::collection::vec(any::<f32>(), n.clone()).prop_map(Array::F32),
        prop::collection::vec(any::<bool>(), n.clone()).prop_map(Array::Bool),
        prop::collection::vec(any::<String>(), n.clone()).prop_map(Array::Str),
        prop::collection::vec(any::<u64>(), n.clone()).prop_map(Array::U64),
        prop::collection::vec(any::<i64>(), n.clone()).prop_map(Array::I64),
        prop::collection::vec(any::<f64>(), n).prop_map(Array::F64),
    ]
}

fn array() -> impl Strategy<Value = Array> {
    // Depth at most 4 here; the depth cap itself is unit-tested.
    leaf_array().prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Array::Array)
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<f32>().prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::Str),
        array().prop_map(Value::Array),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
    ]
}

#[derive(Debug, Clone)]
struct TensorSpec {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    seed: u64,
}

fn tensor() -> impl Strategy<Value = TensorSpec> {
    (
        "[a-z_.]{1,20}",
        prop::sample::select(GgmlType::ALL.to_vec()),
        0u64..3,
        prop::collection::vec(0u64..4, 0..4),
        any::<u64>(),
    )
        .prop_map(|(name, ty, blocks, rest, seed)| {
            let mut dims = vec![blocks * ty.block_size() as u64];
            dims.extend(rest);
            TensorSpec {
                name,
                dims,
                ty,
                seed,
            }
        })
}

#[derive(Debug, Clone)]
struct FileSpec {
    alignment: Option<u32>,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

fn file_spec() -> impl Strategy<Value = FileSpec> {
    (
        prop::option::of(prop::sample::select(vec![1u32, 8, 32, 64, 128])),
        prop::collection::vec(("[a-z.]{0,12}", value()), 0..8),
        prop::collection::vec(tensor(), 0..5),
    )
        .prop_map(|(alignment, kvs, tensors)| {
            // Make keys and names unique by prefixing their index.
            let metadata = kvs
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| (format!("k{i}{k}"), v))
                .collect();
            let tensors = tensors
                .into_iter()
                .enumerate()
                .map(|(i, mut t)| {
                    t.name = format!("t{i}{}", t.name);
                    t
                })
                .collect();
            FileSpec {
                alignment,
                metadata,
                tensors,
            }
        })
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn tensor_bytes(t: &TensorSpec) -> Vec<u8> {
    let n: u64 = t.dims.iter().product();
    let size = t.ty.bytes_for(n).expect("block multiple by construction");
    bytes(t.seed, size as usize)
}

fn write(spec: &FileSpec) -> Vec<u8> {
    let mut w = GgufWriter::new();
    if let Some(a) = spec.alignment {
        w.add_u32(keys::GENERAL_ALIGNMENT, a).unwrap();
    }
    for (k, v) in &spec.metadata {
        w.add(k, v.clone()).unwrap();
    }
    for t in &spec.tensors {
        w.add_tensor_info(&t.name, &t.dims, t.ty).unwrap();
    }
    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    for t in &spec.tensors {
        w.write_tensor_data(&mut out, &t.name, &tensor_bytes(t))
            .unwrap();
    }
    w.finish().unwrap();
    out
}

/// Write a parsed file back out (metadata and tensors in file order).
fn rewrite(g: &Gguf<'_>) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        w.add(k, v.clone()).unwrap();
    }
    for t in g.tensors() {
        w.add_tensor_info(t.name(), t.dims(), t.ty()).unwrap();
    }
    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    for t in g.tensors() {
        w.write_tensor_data(&mut out, t.name(), g.tensor_data(t))
            .unwrap();
    }
    w.finish().unwrap();
    out
}

/// Touch everything a parsed file offers; must not panic.
fn touch_all(g: &Gguf<'_>) -> usize {
    let mut sum = 0usize;
    for t in g.tensors() {
        let d = g.tensor_data(t);
        sum = sum
            .wrapping_add(d.len())
            .wrapping_add(d.first().copied().unwrap_or(0) as usize);
        sum = sum.wrapping_add(g.tensor_bytes(t.name()).map_or(0, |d| d.len()));
    }
    for (k, _) in g.metadata() {
        sum += g.get_u32(k).is_ok() as usize
            + g.get_i32(k).is_ok() as usize
            + g.get_u64(k).is_ok() as usize
            + g.get_f32(k).is_ok() as usize
            + g.get_bool(k).is_ok() as usize
            + g.get_str(k).is_ok() as usize
            + g.get_str_array(k).is_ok() as usize
            + g.get_f32_array(k).is_ok() as usize
            + g.get_i32_array(k).is_ok() as usize;
    }
    sum
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn write_then_read_round_trips_metadata_and_tensors(spec in file_spec()) {
        let out = write(&spec);
        let g = Gguf::parse(&out).unwrap();
        prop_assert_eq!(g.version(), 3);
        prop_assert_eq!(g.alignment(), spec.alignment.unwrap_or(32));
        prop_assert_eq!(g.data_offset() % g.alignment() as usize, 0);

        let mut expected = Vec::new();
        if let Some(a) = spec.alignment {
            expected.push((keys::GENERAL_ALIGNMENT.to_string(), Value::U32(a)));
        }
        expected.extend(spec.metadata.iter().cloned());
        prop_assert_eq!(g.metadata().len(), expected.len());
        for ((k, v), (ek, ev)) in g.metadata().iter().zip(&expected) {
            prop_assert_eq!(k, ek);
            // Debug compares NaN payload-insensitively; the byte comparison below is exact.
            prop_assert_eq!(format!("{v:?}"), format!("{ev:?}"));
            prop_assert_eq!(format!("{:?}", g.get(k)), format!("{:?}", Some(ev)));
        }

        prop_assert_eq!(g.tensors().len(), spec.tensors.len());
        for (t, e) in g.tensors().iter().zip(&spec.tensors) {
            prop_assert_eq!(t.name(), e.name.as_str());
            prop_assert_eq!(t.dims(), &e.dims[..]);
            prop_assert_eq!(t.ty(), e.ty);
            prop_assert_eq!(t.offset() % g.alignment() as u64, 0);
            prop_assert_eq!(g.tensor_data(t), &tensor_bytes(e)[..]);
            prop_assert_eq!(g.tensor(&e.name), Some(t));
        }
        // Every bit (NaN payloads, string bytes, padding) survives a rewrite.
        prop_assert_eq!(rewrite(&g), out);
    }

    #[test]
    fn random_byte_flips_never_panic(
        spec in file_spec(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut out = write(&spec);
        for (at, byte) in flips {
            let i = at.index(out.len());
            out[i] ^= byte.max(1);
        }
        if let Ok(g) = Gguf::parse(&out) {
            touch_all(&g);
        }
    }

    #[test]
    fn truncations_never_panic(spec in file_spec(), cut in any::<prop::sample::Index>()) {
        let out = write(&spec);
        let cut = cut.index(out.len() + 1);
        match Gguf::parse(&out[..cut]) {
            Ok(g) => { touch_all(&g); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn huge_length_fields_never_panic(
        spec in file_spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
            u64::MAX, u64::MAX - 1, i64::MAX as u64, 1 << 63, 1 << 62, 1 << 40, 1 << 32,
            u32::MAX as u64, 0x1_0000_0001, 1 << 20, 0,
        ])), 1..4),
        in_counts in any::<bool>(),
    ) {
        let mut out = write(&spec);
        for (at, v) in edits {
            // Either one of the two header counts or any 8-byte window (string/array lengths,
            // dims and offsets sit at arbitrary positions).
            let i = if in_counts { 8 + 8 * at.index(2) } else { at.index(out.len() - 7) };
            out[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        if let Ok(g) = Gguf::parse(&out) {
            touch_all(&g);
        }
    }
}
