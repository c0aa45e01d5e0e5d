//! GGUF container: bounded reader over `&[u8]`, streaming writer.
