//! Unit tests: every validation error comes out as its own variant, getters name key and type,
//! the writer enforces its call order.

use super::*;
use crate::dtype::GgmlType;
use crate::error::Error;

// ---- raw file builders (independent of the writer, so malformed files can be made) ----

fn s(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text);
}

/// One key/value record: key, type id, raw payload.
fn kv(key: &[u8], ty: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    s(&mut out, key);
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// One tensor info record.
fn ti(name: &[u8], dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    s(&mut out, name);
    out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out
}

/// A file: header, the records, padding to `align`, `data_len` data bytes.
fn file(version: u32, kvs: &[Vec<u8>], tis: &[Vec<u8>], align: usize, data_len: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(tis.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    kvs.iter().for_each(|k| out.extend_from_slice(k));
    tis.iter().for_each(|t| out.extend_from_slice(t));
    out.resize(out.len().next_multiple_of(align), 0);
    out.extend((0..data_len).map(|i| i as u8));
    out
}

fn simple(tis: &[Vec<u8>], data_len: usize) -> Vec<u8> {
    file(3, &[], tis, 32, data_len)
}

fn err(bytes: &[u8]) -> Error {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("malformed file parsed"),
        Err(e) => e,
    }
}

fn u32b(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

// ---- header ----

#[test]
fn valid_minimal_file_parses() {
    let bytes = simple(&[ti(b"w", &[8, 2], 0, 0)], 64);
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    let t = g.tensor("w").unwrap();
    assert_eq!(
        (t.dims(), t.ty(), t.size(), t.n_elements()),
        (&[8u64, 2][..], GgmlType::F32, 64, 16)
    );
    assert_eq!(g.tensor_data(t), &(0..64u8).collect::<Vec<_>>()[..]);
    assert_eq!(g.data_offset() % 32, 0);
}

#[test]
fn bad_magic_is_rejected() {
    let mut b = simple(&[], 0);
    b[0] = b'X';
    assert!(matches!(err(&b), Error::GgufBadMagic { .. }));
    assert!(matches!(err(b"GG"), Error::GgufBadMagic { .. }));
    assert!(matches!(err(b""), Error::GgufBadMagic { .. }));
}

#[test]
fn versions_other_than_2_and_3_are_rejected() {
    assert!(Gguf::parse(&file(2, &[], &[], 32, 0)).is_ok());
    for v in [0, 1, 4, 0x0001_0003] {
        let e = err(&file(v, &[], &[], 32, 0));
        assert!(
            matches!(e, Error::GgufUnsupportedVersion { version } if version == v),
            "{e}"
        );
        if v == 1 {
            assert_eq!(
                e.to_string().split(" (").next(),
                Some("unsupported GGUF version 1")
            );
        }
    }
}

#[test]
fn byte_swapped_version_is_reported_as_big_endian() {
    let e = err(&file(0x0300_0000, &[], &[], 32, 0));
    assert!(matches!(e, Error::GgufBigEndian { raw: 0x0300_0000 }));
    assert!(e.to_string().starts_with("big-endian GGUF not supported"));
}

#[test]
fn truncated_header_is_rejected() {
    let b = file(3, &[kv(b"a", 4, &u32b(1))], &[], 32, 0);
    for cut in [5, 10, 23, 30, b.len() - 33] {
        let e = err(&b[..cut]);
        assert!(
            matches!(
                e,
                Error::GgufTruncated { .. } | Error::GgufLengthTooLarge { .. }
            ),
            "{cut}: {e}"
        );
    }
    assert!(matches!(
        err(&b[..40]),
        Error::GgufTruncated {
            offset: 37,
            need: 4,
            remaining: 3,
            ..
        }
    ));
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let mut b = simple(&[], 0);
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        err(&b),
        Error::GgufLengthTooLarge { len: u64::MAX, .. }
    ));
    let mut b = simple(&[], 0);
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = err(&b);
    assert!(
        matches!(&e, Error::GgufLengthTooLarge { what, .. } if what.contains("key/value")),
        "{e}"
    );
}

#[test]
fn huge_string_and_array_lengths_are_rejected() {
    let mut payload = u64::MAX.to_le_bytes().to_vec();
    payload.extend_from_slice(b"abc");
    let e = err(&file(3, &[kv(b"k", 8, &payload)], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufLengthTooLarge { what, .. } if what.contains("'k'")),
        "{e}"
    );

    let mut arr = u32b(4);
    arr.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let e = err(&file(3, &[kv(b"arr", 9, &arr)], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufLengthTooLarge { what, .. } if what.contains("array length of key 'arr'")),
        "{e}"
    );
}

// ---- metadata ----

fn nested(depth: usize) -> Vec<u8> {
    // depth arrays of arrays around one array of one u8.
    let mut p = Vec::new();
    for _ in 0..depth - 1 {
        p.extend_from_slice(&u32b(9));
        p.extend_from_slice(&1u64.to_le_bytes());
    }
    p.extend_from_slice(&u32b(0));
    p.extend_from_slice(&1u64.to_le_bytes());
    p.push(7);
    p
}

#[test]
fn nesting_depth_is_capped() {
    let bytes = file(3, &[kv(b"n", 9, &nested(MAX_ARRAY_DEPTH))], &[], 32, 0);
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_array("n").unwrap().depth(), MAX_ARRAY_DEPTH);
    let e = err(&file(
        3,
        &[kv(b"n", 9, &nested(MAX_ARRAY_DEPTH + 1))],
        &[],
        32,
        0,
    ));
    assert!(
        matches!(&e, Error::GgufNestingTooDeep { key, .. } if key == "n"),
        "{e}"
    );
}

#[test]
fn non_utf8_strings_are_rejected() {
    let e = err(&file(3, &[kv(b"k\xff", 4, &u32b(1))], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufInvalidUtf8 { offset: 32, .. }),
        "{e}"
    );
    let mut p = Vec::new();
    s(&mut p, b"\xc3\x28");
    let e = err(&file(3, &[kv(b"key", 8, &p)], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufInvalidUtf8 { what, .. } if what.contains("'key'")),
        "{e}"
    );
    let e = err(&simple(&[ti(b"\xfe", &[1], 0, 0)], 32));
    assert!(matches!(e, Error::GgufInvalidUtf8 { .. }), "{e}");
}

#[test]
fn bool_bytes_other_than_0_and_1_are_rejected() {
    let bytes = file(3, &[kv(b"b", 7, &[1])], &[], 32, 0);
    let g = Gguf::parse(&bytes).unwrap();
    assert!(g.get_bool("b").unwrap());
    let e = err(&file(3, &[kv(b"b", 7, &[2])], &[], 32, 0));
    assert!(matches!(e, Error::GgufInvalidBool { byte: 2, .. }), "{e}");
}

#[test]
fn unknown_value_types_are_rejected() {
    let e = err(&file(3, &[kv(b"k", 13, &[0; 8])], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufUnknownValueType { id: 13, key, .. } if key == "k"),
        "{e}"
    );
    let mut arr = u32b(99);
    arr.extend_from_slice(&0u64.to_le_bytes());
    let e = err(&file(3, &[kv(b"a", 9, &arr)], &[], 32, 0));
    assert!(
        matches!(e, Error::GgufUnknownValueType { id: 99, .. }),
        "{e}"
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let a = kv(b"dup", 4, &u32b(1));
    let e = err(&file(3, &[a.clone(), a.clone()], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufDuplicateKey { key, offset } if key == "dup" && *offset == 24 + a.len() as u64),
        "{e}"
    );
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    let key = keys::GENERAL_ALIGNMENT.as_bytes();
    let bytes = file(3, &[kv(key, 4, &u32b(64))], &[ti(b"t", &[4], 0, 0)], 64, 16);
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);
    for bad in [0, 3, 48] {
        let e = err(&file(3, &[kv(key, 4, &u32b(bad))], &[], 32, 0));
        assert!(
            matches!(e, Error::GgufBadAlignment { alignment, .. } if alignment == bad),
            "{e}"
        );
    }
    let e = err(&file(3, &[kv(key, 10, &64u64.to_le_bytes())], &[], 32, 0));
    assert!(
        matches!(&e, Error::GgufAlignmentType { found, .. } if found == "u64"),
        "{e}"
    );
}

#[test]
fn metadata_keeps_file_order_and_all_scalar_types() {
    let kvs = vec![
        kv(b"z", 0, &[200]),
        kv(b"a", 1, &[0xff]),
        kv(b"m", 2, &513u16.to_le_bytes()),
        kv(b"b", 3, &(-2i16).to_le_bytes()),
        kv(b"c", 6, &1.5f32.to_le_bytes()),
        kv(b"d", 10, &u64::MAX.to_le_bytes()),
        kv(b"e", 11, &i64::MIN.to_le_bytes()),
        kv(b"f", 12, &0.25f64.to_le_bytes()),
    ];
    let bytes = file(3, &kvs, &[], 32, 0);
    let g = Gguf::parse(&bytes).unwrap();
    let keys: Vec<_> = g.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["z", "a", "m", "b", "c", "d", "e", "f"]);
    assert_eq!(g.get("z"), Some(&Value::U8(200)));
    assert_eq!(g.get("a"), Some(&Value::I8(-1)));
    assert_eq!(g.get("m"), Some(&Value::U16(513)));
    assert_eq!(g.get("b"), Some(&Value::I16(-2)));
    assert_eq!(g.get_f32("c").unwrap(), 1.5);
    assert_eq!(g.get_u64("d").unwrap(), u64::MAX);
    assert_eq!(g.get("e"), Some(&Value::I64(i64::MIN)));
    assert_eq!(g.get("f"), Some(&Value::F64(0.25)));
}

// ---- tensor infos ----

#[test]
fn duplicate_tensor_names_are_rejected() {
    let e = err(&simple(&[ti(b"t", &[4], 0, 0), ti(b"t", &[4], 0, 32)], 64));
    assert!(
        matches!(&e, Error::GgufDuplicateTensor { name, .. } if name == "t"),
        "{e}"
    );
}

#[test]
fn tensor_names_of_64_bytes_are_rejected() {
    let ok = [b'a'; 63];
    assert!(Gguf::parse(&simple(&[ti(&ok, &[4], 0, 0)], 16)).is_ok());
    let long = [b'a'; 64];
    let e = err(&simple(&[ti(&long, &[4], 0, 0)], 16));
    assert!(
        matches!(
            e,
            Error::GgufTensorNameTooLong {
                len: 64,
                offset: 24,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn dimension_counts_outside_1_to_4_are_rejected() {
    for n in [0usize, 5] {
        let dims = vec![1u64; n];
        let e = err(&simple(&[ti(b"t", &dims, 0, 0)], 64));
        assert!(
            matches!(&e, Error::GgufBadDimCount { n_dims, tensor, .. } if *n_dims == n as u64 && tensor == "t"),
            "{e}"
        );
    }
    assert!(Gguf::parse(&simple(&[ti(b"t", &[1, 1, 1, 1], 0, 0)], 4)).is_ok());
}

#[test]
fn dimensions_above_i64_max_are_rejected() {
    let e = err(&simple(&[ti(b"t", &[4, 1u64 << 63], 0, 0)], 64));
    assert!(matches!(e, Error::GgufBadDim { index: 1, .. }), "{e}");
}

#[test]
fn zero_dimensions_give_empty_tensors_like_ggml() {
    let bytes = simple(&[ti(b"e", &[0, 3], 0, 0), ti(b"t", &[2], 0, 0)], 8);
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.tensor_bytes("e").unwrap(), &[] as &[u8]);
    assert_eq!(g.tensor_bytes("t").unwrap().len(), 8);
}

#[test]
fn element_count_overflow_is_rejected() {
    let big = 1u64 << 40;
    let e = err(&simple(&[ti(b"t", &[big, big], 0, 0)], 64));
    assert!(matches!(e, Error::GgufTensorTooLarge { .. }), "{e}");
    // Fits u64 but not i64 (ggml's limit).
    let e = err(&simple(&[ti(b"t", &[1 << 32, 1 << 31], 24, 0)], 64));
    assert!(matches!(e, Error::GgufTensorTooLarge { .. }), "{e}");
}

#[test]
fn unknown_tensor_types_are_rejected() {
    for id in [4u32, 5, 31, 40, u32::MAX] {
        let e = err(&simple(&[ti(b"t", &[32], id, 0)], 64));
        assert!(
            matches!(&e, Error::GgufUnknownTensorType { id: got, tensor, .. } if *got == id && tensor == "t"),
            "{e}"
        );
    }
}

#[test]
fn rows_must_be_whole_blocks() {
    let e = err(&simple(&[ti(b"q", &[48, 2], GgmlType::Q4_0.id(), 0)], 128));
    assert!(
        matches!(
            e,
            Error::GgufNotBlockMultiple {
                ne0: 48,
                block: 32,
                ..
            }
        ),
        "{e}"
    );
    let bytes = simple(&[ti(b"q", &[64, 2], GgmlType::Q4_0.id(), 0)], 72);
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.tensor("q").unwrap().size(), 72);
}

#[test]
fn misaligned_offsets_are_rejected() {
    let e = err(&simple(&[ti(b"t", &[4], 0, 16)], 64));
    assert!(
        matches!(
            e,
            Error::GgufMisalignedTensor {
                data_offset: 16,
                alignment: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn data_past_the_end_is_rejected() {
    let e = err(&simple(&[ti(b"t", &[4], 0, 0)], 15));
    assert!(
        matches!(
            e,
            Error::GgufTensorOutOfBounds {
                size: 16,
                data_len: 15,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&simple(&[ti(b"t", &[4], 0, u64::MAX - 31)], 64));
    assert!(matches!(e, Error::GgufTensorOutOfBounds { .. }), "{e}");
}

#[test]
fn overlapping_tensors_are_rejected() {
    let e = err(&simple(&[ti(b"a", &[16], 0, 0), ti(b"b", &[4], 0, 32)], 64));
    assert!(
        matches!(&e, Error::GgufTensorOverlap { tensor, other, .. } if tensor == "b" && other == "a"),
        "{e}"
    );
    let e = err(&simple(
        &[ti(b"a", &[4], 0, 64), ti(b"b", &[32], 0, 0)],
        128,
    ));
    assert!(
        matches!(&e, Error::GgufTensorOverlap { tensor, other, .. } if tensor == "b" && other == "a"),
        "{e}"
    );
    // Touching is fine.
    assert!(Gguf::parse(&simple(&[ti(b"a", &[8], 0, 0), ti(b"b", &[8], 0, 32)], 64)).is_ok());
}

// ---- getters ----

#[test]
fn getters_name_the_key_and_the_type_found() {
    let mut w = GgufWriter::new();
    w.add_u32("n", 7).unwrap();
    w.add_string("s", "hi").unwrap();
    w.add_array("toks", vec!["a".to_string(), "b".to_string()])
        .unwrap();
    w.add_array("scores", vec![0.5f32, -1.0]).unwrap();
    w.add_array("types", vec![1i32, 3]).unwrap();
    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    w.finish().unwrap();
    let bytes = out;
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_u32("n").unwrap(), 7);
    assert_eq!(g.get_str("s").unwrap(), "hi");
    assert_eq!(g.get_str_array("toks").unwrap(), ["a", "b"]);
    assert_eq!(g.get_f32_array("scores").unwrap(), [0.5, -1.0]);
    assert_eq!(g.get_i32_array("types").unwrap(), [1, 3]);

    let e = g.get_u32("missing").unwrap_err();
    assert_eq!(e.to_string(), "GGUF missing key missing");
    let e = g.get_i32("n").unwrap_err();
    assert!(
        matches!(&e, Error::GgufWrongType { key, expected: "i32", found } if key == "n" && found == "u32"),
        "{e}"
    );
    let e = g.get_f32_array("toks").unwrap_err();
    assert_eq!(
        e.to_string(),
        "GGUF key 'toks' is array of string, expected array of f32"
    );
    assert!(matches!(g.get_str("n"), Err(Error::GgufWrongType { .. })));
    assert!(matches!(g.get_bool("s"), Err(Error::GgufWrongType { .. })));
    assert!(matches!(g.get_u64("n"), Err(Error::GgufWrongType { .. })));
    assert!(matches!(
        g.tensor_bytes("x"),
        Err(Error::GgufMissingTensor { .. })
    ));
}

// ---- writer ----

fn two_tensor_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_string(keys::GENERAL_ARCHITECTURE, "llama").unwrap();
    w.add_tensor_info("a", &[8], GgmlType::F32).unwrap();
    w.add_tensor_info("b", &[32, 2], GgmlType::Q8_0).unwrap();
    w
}

#[test]
fn writer_output_parses_back_with_aligned_offsets() {
    let mut w = two_tensor_writer();
    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    w.write_tensor_data(&mut out, "a", &[1; 32]).unwrap();
    w.write_tensor_data(&mut out, "b", &[2; 68]).unwrap();
    w.finish().unwrap();
    assert_eq!(out.len() % 32, 0);
    let bytes = out;
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_str(keys::GENERAL_ARCHITECTURE).unwrap(), "llama");
    assert_eq!(g.tensor("b").unwrap().offset(), 32);
    assert_eq!(g.tensor_bytes("a").unwrap(), &[1; 32]);
    assert_eq!(g.tensor_bytes("b").unwrap(), &[2; 68]);
}

#[test]
fn writer_honours_general_alignment() {
    let mut w = GgufWriter::new();
    w.add_tensor_info("a", &[3], GgmlType::F32).unwrap();
    w.add_u32(keys::GENERAL_ALIGNMENT, 256).unwrap();
    w.add_tensor_info("b", &[3], GgmlType::F32).unwrap();
    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    assert_eq!(out.len(), 256);
    w.write_tensor_data(&mut out, "a", &[1; 12]).unwrap();
    w.write_tensor_data(&mut out, "b", &[2; 12]).unwrap();
    w.finish().unwrap();
    let bytes = out;
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment(), 256);
    assert_eq!(g.tensor("b").unwrap().offset(), 256);
    assert_eq!(g.tensor_bytes("b").unwrap(), &[2; 12]);

    let mut w = GgufWriter::new();
    assert!(matches!(
        w.add_u32(keys::GENERAL_ALIGNMENT, 24),
        Err(Error::GgufBadAlignment { .. })
    ));
    assert!(matches!(
        w.add_u64(keys::GENERAL_ALIGNMENT, 32),
        Err(Error::GgufAlignmentType { .. })
    ));
}

#[test]
fn writer_enforces_order_length_and_completeness() {
    let mut w = two_tensor_writer();
    let mut out = Vec::new();
    assert!(matches!(
        w.write_tensor_data(&mut out, "a", &[0; 32]),
        Err(Error::GgufWriterState(_))
    ));
    assert!(matches!(w.clone().finish(), Err(Error::GgufWriterState(_))));
    w.write_header(&mut out).unwrap();
    assert!(matches!(
        w.write_header(&mut out),
        Err(Error::GgufWriterState(_))
    ));
    assert!(matches!(
        w.add_u32("late", 1),
        Err(Error::GgufWriterState(_))
    ));
    assert!(matches!(
        w.add_tensor_info("late", &[1], GgmlType::F32),
        Err(Error::GgufWriterState(_))
    ));
    assert!(matches!(
        w.write_tensor_data(&mut out, "b", &[0; 68]),
        Err(Error::GgufWriteOrder { .. })
    ));
    assert!(matches!(
        w.write_tensor_data(&mut out, "a", &[0; 31]),
        Err(Error::GgufWriteLength {
            expected: 32,
            got: 31,
            ..
        })
    ));
    w.write_tensor_data(&mut out, "a", &[0; 32]).unwrap();
    assert!(matches!(w.clone().finish(), Err(Error::GgufWriterState(_))));
    w.write_tensor_data(&mut out, "b", &[0; 68]).unwrap();
    assert!(matches!(
        w.write_tensor_data(&mut out, "b", &[0; 68]),
        Err(Error::GgufWriterState(_))
    ));
    w.finish().unwrap();
}

#[test]
fn writer_rejects_what_the_reader_rejects() {
    let mut w = GgufWriter::new();
    w.add_u32("k", 1).unwrap();
    assert!(matches!(
        w.add_u32("k", 2),
        Err(Error::GgufDuplicateKey { .. })
    ));
    let mut deep = Array::U8(vec![1]);
    for _ in 0..MAX_ARRAY_DEPTH {
        deep = Array::Array(vec![deep]);
    }
    assert!(matches!(
        w.add_array("deep", deep),
        Err(Error::GgufNestingTooDeep { .. })
    ));
    let long = "x".repeat(64);
    assert!(matches!(
        w.add_tensor_info(&long, &[1], GgmlType::F32),
        Err(Error::GgufTensorNameTooLong { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("t", &[], GgmlType::F32),
        Err(Error::GgufBadDimCount { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("t", &[1; 5], GgmlType::F32),
        Err(Error::GgufBadDimCount { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("t", &[u64::MAX], GgmlType::F32),
        Err(Error::GgufBadDim { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("t", &[16], GgmlType::Q4_0),
        Err(Error::GgufNotBlockMultiple { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("t", &[1 << 40, 1 << 40], GgmlType::F32),
        Err(Error::GgufTensorTooLarge { .. })
    ));
    w.add_tensor_info("t", &[32], GgmlType::Q4_0).unwrap();
    assert!(matches!(
        w.add_tensor_info("t", &[32], GgmlType::Q4_0),
        Err(Error::GgufDuplicateTensor { .. })
    ));
}

#[test]
fn writer_output_is_deterministic() {
    let bytes = || {
        let mut w = two_tensor_writer();
        w.add_array(
            "nested",
            Array::Array(vec![Array::Bool(vec![true]), Array::F64(vec![1.0])]),
        )
        .unwrap();
        w.header_bytes().unwrap()
    };
    assert_eq!(bytes(), bytes());
}

#[test]
fn data_section_past_the_end_rejects_even_empty_tensors() {
    // Found by the proptest: header ends unpadded, so the data section starts past the end.
    let mut b = simple(&[ti(b"e", &[0], 0, 0)], 0);
    assert_eq!(b.len(), 64, "57 header bytes padded to 64");
    b.truncate(63);
    let e = err(&b);
    assert!(
        matches!(
            e,
            Error::GgufTensorOutOfBounds {
                size: 0,
                data_len: 0,
                ..
            }
        ),
        "{e}"
    );
}

/// A sink whose every write fails.
struct FailingSink;

impl std::io::Write for FailingSink {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_io_errors_are_the_source_and_not_repeated_in_the_message() {
    let mut w = GgufWriter::new();
    w.add_string("general.architecture", "llama").unwrap();
    let e = w
        .write_header(&mut FailingSink)
        .expect_err("the sink fails");
    assert!(matches!(e, Error::GgufIo(_)), "{e:?}");
    let source = std::error::Error::source(&e).expect("the io::Error is the source");
    assert_eq!(source.to_string(), "disk on fire");
    assert!(!e.to_string().contains("disk on fire"), "{e}");
}
