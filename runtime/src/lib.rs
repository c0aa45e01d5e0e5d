//! cinder: Llama 2 inference from GGUF files.
