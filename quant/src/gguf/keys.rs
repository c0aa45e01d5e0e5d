//! Metadata key names used by Llama 2 GGUF files, as llama.cpp writes them.

/// Model architecture (`"llama"`), string.
pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
/// Human-readable model name, string.
pub const GENERAL_NAME: &str = "general.name";
/// Data alignment in bytes, u32, power of two; 32 when absent.
pub const GENERAL_ALIGNMENT: &str = "general.alignment";
/// llama.cpp's `llama_ftype` of the file, u32.
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
/// Version of the quantization formats, u32.
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";

/// Training context length, u32.
pub const LLAMA_CONTEXT_LENGTH: &str = "llama.context_length";
/// Embedding width (`dim`), u32.
pub const LLAMA_EMBEDDING_LENGTH: &str = "llama.embedding_length";
/// Number of transformer blocks, u32.
pub const LLAMA_BLOCK_COUNT: &str = "llama.block_count";
/// Hidden width of the feed-forward network, u32.
pub const LLAMA_FEED_FORWARD_LENGTH: &str = "llama.feed_forward_length";
/// Number of query heads, u32.
pub const LLAMA_ATTENTION_HEAD_COUNT: &str = "llama.attention.head_count";
/// Number of key/value heads (grouped-query attention), u32.
pub const LLAMA_ATTENTION_HEAD_COUNT_KV: &str = "llama.attention.head_count_kv";
/// RMSNorm epsilon, f32.
pub const LLAMA_ATTENTION_LAYER_NORM_RMS_EPSILON: &str = "llama.attention.layer_norm_rms_epsilon";
/// RoPE base frequency, f32.
pub const LLAMA_ROPE_FREQ_BASE: &str = "llama.rope.freq_base";
/// Number of rotated dimensions per head, u32.
pub const LLAMA_ROPE_DIMENSION_COUNT: &str = "llama.rope.dimension_count";
/// Vocabulary size, u32.
pub const LLAMA_VOCAB_SIZE: &str = "llama.vocab_size";

/// Tokenizer model (`"llama"` for sentencepiece BPE), string.
pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
/// Token pieces, array of string.
pub const TOKENIZER_TOKENS: &str = "tokenizer.ggml.tokens";
/// Token scores, array of f32.
pub const TOKENIZER_SCORES: &str = "tokenizer.ggml.scores";
/// Token types (normal, unknown, control, byte...), array of i32.
pub const TOKENIZER_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// Beginning-of-sequence token id, u32.
pub const TOKENIZER_BOS_TOKEN_ID: &str = "tokenizer.ggml.bos_token_id";
/// End-of-sequence token id, u32.
pub const TOKENIZER_EOS_TOKEN_ID: &str = "tokenizer.ggml.eos_token_id";
/// Unknown token id, u32.
pub const TOKENIZER_UNKNOWN_TOKEN_ID: &str = "tokenizer.ggml.unknown_token_id";
/// Padding token id, u32.
pub const TOKENIZER_PADDING_TOKEN_ID: &str = "tokenizer.ggml.padding_token_id";
/// Whether to prepend BOS, bool.
pub const TOKENIZER_ADD_BOS_TOKEN: &str = "tokenizer.ggml.add_bos_token";
/// Whether to append EOS, bool.
pub const TOKENIZER_ADD_EOS_TOKEN: &str = "tokenizer.ggml.add_eos_token";
/// Jinja chat template, string.
pub const TOKENIZER_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
