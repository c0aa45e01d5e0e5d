//! The library API in one page: load a GGUF, tokenize a prompt, generate greedily.
//!
//! ```sh
//! cargo run --release -p cinder --example generate -- stories260k.q8_0.gguf "Once upon a time"
//! ```

use std::io::Write;

use cinder::generate::{GenerateOptions, Generator, load_tokenizer};
use cinder::sampler::{Sampler, SamplerParams};
use cinder::{Model, Session, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(prompt)) = (args.next(), args.next()) else {
        eprintln!("usage: generate MODEL.gguf PROMPT");
        std::process::exit(2);
    };
    // The weights stay in the memory map; the kernels are the best this CPU runs.
    let model = Model::load(&path)?;
    let tokenizer = load_tokenizer(&model)?;
    let mut session = Session::new(&model, SessionOptions::default())?;
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let opts = GenerateOptions {
        max_tokens: Some(64),
        decode_prompt: true,
    };
    let mut generator = Generator::new(&mut session, &tokenizer, &mut sampler, opts);
    generator.prompt(&tokenizer.encode(&prompt, tokenizer.add_bos()))?;
    print!("{}", generator.prompt_text());
    let stop = generator.run(|_id, text| {
        print!("{text}");
        let _ = std::io::stdout().flush();
        true
    })?;
    println!("{}", generator.flush());
    let t = generator.timings();
    eprintln!(
        "stopped: {stop:?}; {:.1} tokens/s",
        t.generate_tokens_per_second()
    );
    Ok(())
}
