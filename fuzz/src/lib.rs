//! What several fuzz targets share.

use std::path::Path;
use std::sync::OnceLock;

use cinder::tokenizer::Tokenizer;
use cinder_convert::vocab::Vocab;

/// The stories260K tokenizer (512 pieces, byte fallback), built once per fuzzing process from
/// the quick-start model's `tokenizer.model`.
pub fn stories_tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let bytes = include_bytes!("../../models/stories260k/tokenizer.model");
        let vocab = Vocab::parse(bytes, Path::new("tokenizer.model")).expect("stories260k vocab");
        Tokenizer::from_vocab(&vocab).expect("stories260k tokenizer")
    })
}
