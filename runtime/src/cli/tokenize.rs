//! `cinder tokenize`: show how the model's tokenizer splits a text, like llama-tokenize.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cinder::mmap::MappedFile;
use cinder::tokenizer::{SPACE_SYMBOL, Tokenizer};
use cinder_quant::gguf::Gguf;

/// Arguments of `cinder tokenize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF model file (only its tokenizer metadata is read).
    #[arg(short = 'm', long, value_name = "MODEL.gguf")]
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// Print only the ids, as `[1, 2, 3]`.
    #[arg(long, conflicts_with = "json")]
    pub ids: bool,
    /// Print a JSON list of `{"id": ..., "piece": ...}`.
    #[arg(long)]
    pub json: bool,
    /// Do not prepend BOS (by default it is added when the model asks for it).
    #[arg(long)]
    pub no_bos: bool,
}

/// The text a token stands for: `▁` as a space; control and byte pieces as written.
fn piece_text(tok: &Tokenizer, id: u32) -> String {
    tok.piece(id).replace(SPACE_SYMBOL, " ")
}

/// The tokenizer of the GGUF file at `path`.
pub fn tokenizer_of(path: &std::path::Path) -> Result<Tokenizer> {
    let file = MappedFile::open(path).with_context(|| format!("opening {}", path.display()))?;
    let g = Gguf::parse(file.bytes()).with_context(|| format!("reading {}", path.display()))?;
    Tokenizer::from_gguf(&g).with_context(|| format!("{}", path.display()))
}

pub fn run(args: &Args) -> Result<()> {
    let tok = tokenizer_of(&args.model)?;
    let ids = tok.encode(&args.text, tok.add_bos() && !args.no_bos);
    if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    } else if args.json {
        let list: Vec<serde_json::Value> = ids
            .iter()
            .map(|&id| serde_json::json!({ "id": id, "piece": piece_text(&tok, id) }))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for &id in &ids {
            println!("{id:6} -> '{}'", piece_text(&tok, id));
        }
    }
    Ok(())
}
