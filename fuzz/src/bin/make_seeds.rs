//! Write small valid GGUF files from cinder's writer into `fuzz/corpus-seeds/`: container
//! seeds (`*.bin`) for `gguf_parse`, and tiny but complete Llama models (`model-*.gguf`, a few
//! to 20 KB: width 16 or 32, one or two layers, a 20-piece vocabulary with a tokenizer, quantized weights
//! of several types) for `model_load`, which is slow on real models; and a SentencePiece
//! `tokenizer.model` of the same vocabulary for `spm_model`.

use cinder_quant::GgmlType;
use cinder_quant::gguf::{Array, GgufWriter, Value, keys};
use cinder_quant::reference::quantize;

/// A tiny Llama: its shape and the type of each kind of tensor.
struct Tiny {
    name: &'static str,
    layers: usize,
    dim: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    /// Attention and feed-forward gate/up matrices.
    matrix: GgmlType,
    /// `ffn_down` (its rows are `ffn` long, so K-quants fit when `ffn` is 256).
    down: GgmlType,
    embd: GgmlType,
    /// `None`: tied to the embedding.
    output: Option<GgmlType>,
    chat_template: bool,
}

/// Pieces of the tiny vocabulary: the three specials, four bytes (byte fallback) and words.
const PIECES: [&str; 20] = [
    "<unk>",
    "<s>",
    "</s>",
    "<0x0A>",
    "<0x20>",
    "<0xC3>",
    "<0xA9>",
    "\u{2581}",
    "\u{2581}a",
    "\u{2581}the",
    "a",
    "b",
    "e",
    "h",
    "l",
    "o",
    "t",
    "\u{2581}hello",
    "lo",
    "he",
];

fn tiny_model(m: &Tiny) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_string(keys::GENERAL_ARCHITECTURE, "llama").unwrap();
    w.add_u32(keys::LLAMA_CONTEXT_LENGTH, 64).unwrap();
    w.add_u32(keys::LLAMA_EMBEDDING_LENGTH, m.dim as u32)
        .unwrap();
    w.add_u32(keys::LLAMA_BLOCK_COUNT, m.layers as u32).unwrap();
    w.add_u32(keys::LLAMA_FEED_FORWARD_LENGTH, m.ffn as u32)
        .unwrap();
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT, m.heads as u32)
        .unwrap();
    w.add_u32(keys::LLAMA_ATTENTION_HEAD_COUNT_KV, m.kv_heads as u32)
        .unwrap();
    w.add_f32(keys::LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON, 1e-5)
        .unwrap();
    w.add_f32(keys::LLAMA_ROPE_FREQ_BASE, 10000.0).unwrap();
    w.add_string(keys::TOKENIZER_MODEL, "llama").unwrap();
    let tokens: Vec<String> = PIECES.iter().map(|p| p.to_string()).collect();
    let types: Vec<i32> = (0..PIECES.len())
        .map(|i| match i {
            0 => 2,
            1 | 2 => 3,
            3..=6 => 6,
            _ => 1,
        })
        .collect();
    let scores: Vec<f32> = (0..PIECES.len()).map(|i| -(i as f32)).collect();
    w.add_array(keys::TOKENIZER_TOKENS, tokens).unwrap();
    w.add_array(keys::TOKENIZER_SCORES, scores).unwrap();
    w.add_array(keys::TOKENIZER_TOKEN_TYPE, types).unwrap();
    w.add_u32(keys::TOKENIZER_BOS_TOKEN_ID, 1).unwrap();
    w.add_u32(keys::TOKENIZER_EOS_TOKEN_ID, 2).unwrap();
    w.add_u32(keys::TOKENIZER_UNKNOWN_TOKEN_ID, 0).unwrap();
    w.add_bool(keys::TOKENIZER_ADD_BOS_TOKEN, true).unwrap();
    if m.chat_template {
        w.add_string(
            keys::TOKENIZER_CHAT_TEMPLATE,
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}\
             {% if add_generation_prompt %}<|assistant|>{% endif %}",
        )
        .unwrap();
    }
    let (dim, ffn, vocab) = (m.dim as u64, m.ffn as u64, PIECES.len() as u64);
    let kv = dim / m.heads as u64 * m.kv_heads as u64;
    let mut tensors: Vec<(String, Vec<u64>, GgmlType)> =
        vec![("token_embd.weight".into(), vec![dim, vocab], m.embd)];
    for l in 0..m.layers {
        let t = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.extend([
            (t("attn_norm"), vec![dim], GgmlType::F32),
            (t("attn_q"), vec![dim, dim], m.matrix),
            (t("attn_k"), vec![dim, kv], m.matrix),
            (t("attn_v"), vec![dim, kv], m.matrix),
            (t("attn_output"), vec![dim, dim], m.matrix),
            (t("ffn_norm"), vec![dim], GgmlType::F32),
            (t("ffn_gate"), vec![dim, ffn], m.matrix),
            (t("ffn_up"), vec![dim, ffn], m.matrix),
            (t("ffn_down"), vec![ffn, dim], m.down),
        ]);
    }
    tensors.push(("output_norm.weight".into(), vec![dim], GgmlType::F32));
    if let Some(ty) = m.output {
        tensors.push(("output.weight".into(), vec![dim, vocab], ty));
    }
    for (name, dims, ty) in &tensors {
        w.add_tensor_info(name, dims, *ty).expect("valid tensor");
    }
    let mut out = Vec::new();
    w.write_header(&mut out).expect("header");
    for (i, (name, dims, ty)) in tensors.iter().enumerate() {
        let n: u64 = dims.iter().product();
        // Norms near 1, weights small and varied: activations stay finite.
        let values: Vec<f32> = (0..n as usize)
            .map(|j| {
                let x = ((j * 7919 + i * 104729) % 1000) as f32 / 1000.0 - 0.5;
                if dims.len() == 1 {
                    1.0 + 0.1 * x
                } else {
                    0.2 * x
                }
            })
            .collect();
        let mut data = vec![0u8; w.tensor_size(name).expect("added") as usize];
        quantize(*ty, &values, &mut data).expect("whole blocks");
        w.write_tensor_data(&mut out, name, &data).expect("data");
    }
    w.finish().expect("complete");
    out
}

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

/// Protobuf: a varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Protobuf: field `number` as a varint.
fn pb_varint(out: &mut Vec<u8>, number: u64, v: u64) {
    varint(out, number << 3);
    varint(out, v);
}

/// Protobuf: field `number` as length-delimited bytes.
fn pb_bytes(out: &mut Vec<u8>, number: u64, b: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A SentencePiece `tokenizer.model` as Llama's (BPE, byte fallback, identity normalizer,
/// spaces as U+2581) with the tiny vocabulary of [`PIECES`]: a seed for `spm_model` of a few
/// hundred bytes.
fn tiny_spm() -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in PIECES.iter().enumerate() {
        let kind = match i {
            0 => 2,
            1 | 2 => 3,
            3..=6 => 6,
            _ => 1,
        };
        let mut piece = Vec::new();
        pb_bytes(&mut piece, 1, p.as_bytes());
        varint(&mut piece, 2 << 3 | 5);
        piece.extend_from_slice(&(-(i as f32)).to_le_bytes());
        pb_varint(&mut piece, 3, kind);
        pb_bytes(&mut out, 1, &piece);
    }
    let mut trainer = Vec::new();
    pb_varint(&mut trainer, 3, 2); // model_type BPE
    pb_varint(&mut trainer, 35, 1); // byte_fallback
    pb_varint(&mut trainer, 40, 0); // unk_id
    pb_varint(&mut trainer, 41, 1); // bos_id
    pb_varint(&mut trainer, 42, 2); // eos_id
    pb_bytes(&mut out, 2, &trainer);
    let mut normalizer = Vec::new();
    pb_bytes(&mut normalizer, 1, b"identity");
    pb_varint(&mut normalizer, 3, 1); // add_dummy_prefix
    pb_varint(&mut normalizer, 4, 0); // remove_extra_whitespaces
    pb_varint(&mut normalizer, 5, 1); // escape_whitespaces
    pb_bytes(&mut out, 3, &normalizer);
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

    use GgmlType as T;
    let base = Tiny {
        name: "",
        layers: 1,
        dim: 32,
        ffn: 64,
        heads: 4,
        kv_heads: 4,
        matrix: T::F32,
        down: T::F32,
        embd: T::F32,
        output: Some(T::F32),
        chat_template: false,
    };
    let models = [
        Tiny {
            name: "model-f32",
            dim: 16,
            ffn: 16,
            heads: 2,
            kv_heads: 2,
            ..base
        },
        Tiny {
            name: "model-f16-gqa-tied",
            layers: 2,
            dim: 16,
            ffn: 16,
            heads: 2,
            kv_heads: 1,
            matrix: T::F16,
            down: T::F16,
            embd: T::F16,
            output: None,
            chat_template: true,
        },
        Tiny {
            name: "model-q8_0",
            matrix: T::Q8_0,
            down: T::Q8_0,
            embd: T::Q8_0,
            output: Some(T::Q8_0),
            ..base
        },
        Tiny {
            name: "model-q4_0",
            matrix: T::Q4_0,
            down: T::Q4_0,
            embd: T::Q4_0,
            output: Some(T::Q8_0),
            ..base
        },
        Tiny {
            name: "model-q4_k",
            ffn: 256,
            matrix: T::Q4_0,
            down: T::Q4_K,
            embd: T::Q4_0,
            output: Some(T::Q5_0),
            ..base
        },
        Tiny {
            name: "model-q6_k",
            ffn: 256,
            kv_heads: 1,
            matrix: T::Q4_0,
            down: T::Q6_K,
            embd: T::Q8_0,
            output: Some(T::Q8_0),
            ..base
        },
    ];
    for m in &models {
        let path = dir.join(format!("{}.gguf", m.name));
        std::fs::write(&path, tiny_model(m)).expect("write seed");
        println!("wrote {}", path.display());
    }

    let path = dir.join("tiny.tokenizer.model");
    std::fs::write(&path, tiny_spm()).expect("write seed");
    println!("wrote {}", path.display());

    for (name, bytes) in seeds {
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, bytes).expect("write seed");
        println!("wrote {}", path.display());
    }
}
