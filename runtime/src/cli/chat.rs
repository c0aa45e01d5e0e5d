//! `cinder chat`: an interactive conversation on stdin/stdout.
//!
//! Turns are formatted with Llama 2's chat format, or with the GGUF's
//! `tokenizer.chat_template` (a Hugging Face Jinja template) when it has one. BOS and EOS are
//! inserted as token ids; what the user types is always tokenized as plain text, so typing
//! `</s>` or `[INST]` cannot forge control tokens. The KV cache is kept across turns: each turn
//! evaluates only the tokens after the longest prefix the cache already holds. When the context
//! fills, the oldest turns are dropped and what is kept is evaluated again.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use cinder::Session;
use cinder::chat_format::{Format, Message, Role};
use cinder::generate::{GenerateOptions, Generator, StopReason};
use cinder::tokenizer::Tokenizer;
use cinder_kernels::Kernels;
use cinder_quant::gguf::Gguf;

use super::run::{ModelArgs, SamplingArgs, load, print_timings};

/// Arguments of `cinder chat`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt placed before the first user message.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Most tokens per answer; -1 answers until end of text or a full context.
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub n_predict: i64,
    /// Print timings after every answer.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Drops the oldest user/assistant turns (never the system message nor the last message) until
/// the conversation's tokens fit `budget`; returns the tokens and how many turns were dropped.
fn fit(
    format: &Format,
    tok: &Tokenizer,
    messages: &mut Vec<Message>,
    budget: usize,
) -> Result<(Vec<u32>, usize)> {
    let mut dropped = 0;
    loop {
        let ids = format.tokens(tok, messages)?;
        let first = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
        // A turn is a user message and the answer after it.
        let turn_len = if messages.len() > first + 1 && messages[first].role == Role::User {
            if messages
                .get(first + 1)
                .is_some_and(|m| m.role == Role::Assistant)
            {
                2
            } else {
                1
            }
        } else {
            0
        };
        if ids.len() <= budget || turn_len == 0 || first + turn_len >= messages.len() {
            return Ok((ids, dropped));
        }
        messages.drain(first..first + turn_len);
        dropped += 1;
    }
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    let max_tokens = match args.n_predict {
        n if n < -1 => bail!("-n must be -1 (no limit) or a token count, not {n}"),
        -1 => None,
        n => Some(usize::try_from(n)?),
    };
    let mut sampler = args.sampling.sampler()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let pool = args.model.thread_pool()?;
    pool.install(|| {
        // Refuse a context that cannot fit before spending seconds loading the model.
        cinder::memory::check_file(&args.model.model, kernels, &args.model.session_options())?;
        let (model, tok, load_time) = load(&args.model.model, kernels)?;
        let format = Format::from_gguf(&Gguf::parse(model.bytes())?, model.path())?;
        let mut session = Session::new(&model, args.model.session_options())?;
        let ctx = session.ctx_size();
        // Leave room for an answer when trimming the history.
        let budget = ctx - (ctx / 4).min(512);
        if args.verbose {
            let which = match format {
                Format::Llama2 => "Llama 2 [INST]",
                Format::Template(_) => "tokenizer.chat_template",
            };
            eprintln!("cinder: chat format {which}, context {ctx} tokens");
        }
        let mut messages: Vec<Message> = Vec::new();
        if let Some(sys) = &args.system {
            messages.push(Message::new(Role::System, sys));
        }
        // The tokens the session holds, in order.
        let mut cached: Vec<u32> = Vec::new();
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut line = String::new();
        loop {
            eprint!("> ");
            std::io::stderr().flush()?;
            line.clear();
            if stdin.read_line(&mut line).context("reading stdin")? == 0 {
                eprintln!();
                return Ok(());
            }
            let user = line.trim_end_matches(['\n', '\r']);
            if user.trim().is_empty() {
                continue;
            }
            messages.push(Message::new(Role::User, user));
            let (ids, dropped) = fit(&format, &tok, &mut messages, budget)?;
            if ids.len() >= ctx {
                eprintln!(
                    "cinder: this message needs {} tokens; the context holds {ctx}: not sent",
                    ids.len()
                );
                messages.pop();
                continue;
            }
            let common = cached.iter().zip(&ids).take_while(|(a, b)| a == b).count();
            // At least the last token must be evaluated again to get its logits.
            let common = common.min(ids.len() - 1);
            if dropped > 0 {
                eprintln!(
                    "cinder: context full: dropped the {dropped} oldest turn(s); evaluating {} tokens again",
                    ids.len() - common
                );
            }
            session.truncate(common);
            cached.truncate(common);

            stop.store(false, Ordering::SeqCst);
            let opts = GenerateOptions {
                max_tokens,
                decode_prompt: false,
            };
            let mut generator = Generator::new(&mut session, &tok, &mut sampler, opts);
            generator.prompt(&ids[common..])?;
            cached.extend_from_slice(&ids[common..]);
            let mut answer_ids = Vec::new();
            let mut answer = String::new();
            let mut out = std::io::stdout().lock();
            let reason = generator.run(|id, text| {
                answer_ids.push(id);
                answer.push_str(text);
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                !stop.load(Ordering::SeqCst)
            })?;
            let tail = generator.flush();
            answer.push_str(&tail);
            writeln!(out, "{tail}")?;
            out.flush()?;
            let timings = generator.timings();
            drop(generator);
            cached.extend_from_slice(&answer_ids);
            cached.truncate(session.position());
            match reason {
                StopReason::Interrupted => eprintln!("cinder: answer stopped (Ctrl-C)"),
                StopReason::ContextFull => eprintln!("cinder: answer cut: the context is full"),
                StopReason::Eos | StopReason::Limit => {}
            }
            if args.verbose {
                print_timings(load_time, &timings);
            }
            messages.push(Message {
                role: Role::Assistant,
                content: answer,
                ids: Some(answer_ids),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cinder::chat_format::llama2_tokens;
    use cinder_convert::vocab::Vocab;

    fn llama2_tokenizer() -> Tokenizer {
        let path = cinder_quant::fixtures::path("sources/tokenizer.model");
        let vocab = Vocab::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Tokenizer::from_vocab(&vocab).unwrap()
    }

    #[test]
    fn fit_drops_the_oldest_turns_but_keeps_system_and_last() {
        let tok = llama2_tokenizer();
        let mut msgs = vec![Message::new(Role::System, "S")];
        for i in 0..5 {
            msgs.push(Message::new(Role::User, &format!("question number {i}")));
            msgs.push(Message::new(Role::Assistant, &format!("answer number {i}")));
        }
        msgs.push(Message::new(Role::User, "last"));
        let full = llama2_tokens(&tok, &msgs).len();
        let (ids, dropped) = fit(&Format::Llama2, &tok, &mut msgs, full - 1).unwrap();
        assert_eq!(dropped, 1);
        assert!(ids.len() < full);
        assert_eq!(msgs[0].role, Role::System);
        assert_eq!(msgs[1].content, "question number 1");
        assert_eq!(msgs.last().unwrap().content, "last");
        let (_, dropped) = fit(&Format::Llama2, &tok, &mut msgs, 1).unwrap();
        assert_eq!(dropped, 4);
        assert_eq!(msgs.len(), 2, "system and the last message stay");
    }
}
