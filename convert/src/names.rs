//! Hugging Face Llama tensor names -> GGUF (llama.cpp) tensor names.

/// What a checkpoint tensor becomes in GGUF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The GGUF name, e.g. `blk.3.attn_q.weight`.
    pub name: String,
    /// The layer, for `blk.N.*` tensors.
    pub layer: Option<usize>,
    /// The role of the tensor.
    pub role: Role,
}

/// The role of a tensor in the Llama architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `token_embd.weight` `[vocab, hidden]`.
    TokenEmbd,
    /// `blk.N.attn_norm.weight` `[hidden]`.
    AttnNorm,
    /// `blk.N.attn_q.weight` `[heads * head_dim, hidden]`, rows permuted for adjacent-pair RoPE.
    AttnQ,
    /// `blk.N.attn_k.weight` `[kv_heads * head_dim, hidden]`, rows permuted likewise.
    AttnK,
    /// `blk.N.attn_v.weight` `[kv_heads * head_dim, hidden]`.
    AttnV,
    /// `blk.N.attn_output.weight` `[hidden, heads * head_dim]`.
    AttnOutput,
    /// `blk.N.ffn_norm.weight` `[hidden]`.
    FfnNorm,
    /// `blk.N.ffn_gate.weight` `[ffn, hidden]`.
    FfnGate,
    /// `blk.N.ffn_up.weight` `[ffn, hidden]`.
    FfnUp,
    /// `blk.N.ffn_down.weight` `[hidden, ffn]`.
    FfnDown,
    /// `output_norm.weight` `[hidden]`.
    OutputNorm,
    /// `output.weight` `[vocab, hidden]`.
    Output,
}

const LAYER_TENSORS: [(&str, &str, Role); 9] = [
    ("input_layernorm.weight", "attn_norm.weight", Role::AttnNorm),
    ("self_attn.q_proj.weight", "attn_q.weight", Role::AttnQ),
    ("self_attn.k_proj.weight", "attn_k.weight", Role::AttnK),
    ("self_attn.v_proj.weight", "attn_v.weight", Role::AttnV),
    (
        "self_attn.o_proj.weight",
        "attn_output.weight",
        Role::AttnOutput,
    ),
    (
        "post_attention_layernorm.weight",
        "ffn_norm.weight",
        Role::FfnNorm,
    ),
    ("mlp.gate_proj.weight", "ffn_gate.weight", Role::FfnGate),
    ("mlp.up_proj.weight", "ffn_up.weight", Role::FfnUp),
    ("mlp.down_proj.weight", "ffn_down.weight", Role::FfnDown),
];

/// Tensors that checkpoints carry but GGUF does not (recomputed at run time).
pub fn is_ignored(hf_name: &str) -> bool {
    hf_name.ends_with(".rotary_emb.inv_freq")
}

/// The GGUF name and role of a Hugging Face Llama tensor, or `None` if it is not one.
pub fn map_name(hf_name: &str) -> Option<Mapped> {
    let global = |name: &str, role| {
        Some(Mapped {
            name: name.to_string(),
            layer: None,
            role,
        })
    };
    match hf_name {
        "model.embed_tokens.weight" => return global("token_embd.weight", Role::TokenEmbd),
        "model.norm.weight" => return global("output_norm.weight", Role::OutputNorm),
        "lm_head.weight" => return global("output.weight", Role::Output),
        _ => {}
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    if layer.is_empty()
        || !layer.bytes().all(|b| b.is_ascii_digit())
        || (layer.len() > 1 && layer.starts_with('0'))
    {
        return None;
    }
    let layer: usize = layer.parse().ok()?;
    let (_, gguf, role) = LAYER_TENSORS.iter().find(|(hf, _, _)| *hf == suffix)?;
    Some(Mapped {
        name: format!("blk.{layer}.{gguf}"),
        layer: Some(layer),
        role: *role,
    })
}

/// The GGUF names a checkpoint of `n_layers` layers must produce, in the order cinder writes
/// them (llama.cpp's loader does not depend on the order).
pub fn expected_order(n_layers: usize, has_output: bool) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string()];
    for l in 0..n_layers {
        for (_, gguf, _) in LAYER_TENSORS {
            names.push(format!("blk.{l}.{gguf}"));
        }
    }
    names.push("output_norm.weight".into());
    if has_output {
        names.push("output.weight".into());
    }
    names
}

/// The role and layer of a GGUF (llama.cpp) tensor name, or `None` for names outside the
/// Llama architecture.
pub fn gguf_role(name: &str) -> Option<(Role, Option<usize>)> {
    match name {
        "token_embd.weight" => return Some((Role::TokenEmbd, None)),
        "output_norm.weight" => return Some((Role::OutputNorm, None)),
        "output.weight" => return Some((Role::Output, None)),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (_, _, role) = LAYER_TENSORS.iter().find(|(_, gguf, _)| *gguf == suffix)?;
    Some((*role, Some(layer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_llama_tensor_and_rejects_lookalikes() {
        let m = map_name("model.layers.12.self_attn.k_proj.weight").unwrap();
        assert_eq!(
            (m.name.as_str(), m.layer, m.role),
            ("blk.12.attn_k.weight", Some(12), Role::AttnK)
        );
        assert_eq!(map_name("lm_head.weight").unwrap().name, "output.weight");
        assert_eq!(
            map_name("model.norm.weight").unwrap().role,
            Role::OutputNorm
        );
        for bad in [
            "model.layers.x.mlp.up_proj.weight",
            "model.layers.01.mlp.up_proj.weight",
            "model.layers.1.mlp.up_proj.bias",
            "model.layers..mlp.up_proj.weight",
            "foo",
        ] {
            assert_eq!(map_name(bad), None, "{bad}");
        }
        assert!(is_ignored("model.layers.0.self_attn.rotary_emb.inv_freq"));
    }
}
