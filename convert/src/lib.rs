//! cinder-convert: Hugging Face Llama checkpoints to GGUF.
