//! Write small valid GGUF files from cinder's writer into `fuzz/corpus-seeds/`.

use cinder_quant::GgmlType;
use cinder_quant::gguf::{Array, GgufWriter, Value, keys};

fn file(w: &mut GgufWriter, tensors: &[(&str, &[u64], GgmlType)]) -> Vec<u8> {
    for (name, dims, ty) in tensors {
        w.add_tensor_info(name, dims, *ty).expect("valid tensor");
    }
    let mut out = Vec::new();
    w.write_header(&mut out).expect("header");
    for (i, (name, _, _)) in tensors.iter().enumerate() {
        let size = w.tensor_size(name).expect("added") as usize;
        let data: Vec<u8> = (0..size).map(|j| (j * 13 + i) as u8).collect();
        w.write_tensor_data(&mut out, name, &data).expect("data");
    }
    w.clone().finish().expect("complete");
    out
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus-seeds");
    std::fs::create_dir_all(&dir).expect("seed dir");

    let mut seeds = Vec::new();

    let mut w = GgufWriter::new();
    w.add_string(keys::GENERAL_ARCHITECTURE, "llama").unwrap();
    w.add_u32(keys::LLAMA_BLOCK_COUNT, 1).unwrap();
    w.add_f32(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON, 1e-5)
        .unwrap();
    w.add_array(
        keys::TOKENIZER_TOKENS,
        vec!["<unk>".to_string(), "a".into(), "b".into()],
    )
    .unwrap();
    w.add_array(keys::TOKENIZER_SCORES, vec![0.0f32, -1.0, -2.0])
        .unwrap();
    w.add_array(keys::TOKENIZER_TOKEN_TYPE, vec![2i32, 1, 1])
        .unwrap();
    w.add_bool(keys::TOKENIZER_ADD_BOS_TOKEN, true).unwrap();
    seeds.push((
        "llama-small",
        file(
            &mut w,
            &[
                ("token_embd.weight", &[32, 3], GgmlType::Q8_0),
                ("output_norm.weight", &[32], GgmlType::F32),
            ],
        ),
    ));

    let mut w = GgufWriter::new();
    w.add(keys::GENERAL_ALIGNMENT, Value::U32(64)).unwrap();
    for (i, v) in [
        Value::U8(1),
        Value::I8(-1),
        Value::U16(2),
        Value::I16(-2),
        Value::U32(3),
        Value::I32(-3),
        Value::F32(0.5),
        Value::Bool(false),
        Value::from("s"),
        Value::U64(4),
        Value::I64(-4),
        Value::F64(0.25),
        Value::Array(Array::Array(vec![
            Array::U16(vec![1]),
            Array::Array(vec![Array::F64(vec![])]),
        ])),
    ]
    .into_iter()
    .enumerate()
    {
        w.add(&format!("v{i}"), v).unwrap();
    }
    seeds.push((
        "all-types-aligned-64",
        file(
            &mut w,
            &[
                ("a", &[256], GgmlType::Q6_K),
                ("b", &[3, 2], GgmlType::F16),
                ("c", &[0], GgmlType::F32),
            ],
        ),
    ));

    seeds.push(("empty", file(&mut GgufWriter::new(), &[])));

    for (name, bytes) in seeds {
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, bytes).expect("write seed");
        println!("wrote {}", path.display());
    }
}
