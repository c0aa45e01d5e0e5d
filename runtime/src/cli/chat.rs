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
use cinder::generate::{GenerateOptions, Generator, StopReason};
use cinder::tokenizer::Tokenizer;
use cinder_kernels::Kernels;
use cinder_quant::gguf::{Gguf, Value, keys};

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

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// The tokens an assistant answer was generated as (used instead of re-tokenizing).
    pub ids: Option<Vec<u32>>,
}

impl Message {
    fn new(role: Role, content: &str) -> Self {
        Message {
            role,
            content: content.to_string(),
            ids: None,
        }
    }
}

/// How a conversation becomes tokens.
pub enum Format {
    /// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer}</s><s>[INST] ...`
    Llama2,
    /// A Jinja chat template.
    Template(Box<minijinja::Environment<'static>>),
}

const TEMPLATE_NAME: &str = "chat";

/// Marks where message `i`'s content goes in a rendered template: private-use characters a
/// template does not produce and `strip()` does not remove.
fn sentinel(i: usize) -> String {
    format!("\u{F0000}{i}\u{F0001}")
}

impl Format {
    /// The GGUF's chat template if it has one, else Llama 2's format.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self> {
        match g.get(keys::TOKENIZER_CHAT_TEMPLATE) {
            Some(Value::Str(source)) => Self::template(source),
            Some(v) => bail!(
                "{} is {}, expected string",
                keys::TOKENIZER_CHAT_TEMPLATE,
                v.type_description()
            ),
            None => Ok(Format::Llama2),
        }
    }

    /// A format from a Jinja template source.
    pub fn template(source: &str) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.set_unknown_method_callback(python_string_methods);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .context("parsing tokenizer.chat_template")?;
        Ok(Format::Template(Box::new(env)))
    }

    /// The token ids of `messages`, ending with the prompt for the assistant's answer when the
    /// last message is the user's.
    pub fn tokens(&self, tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
        match self {
            Format::Llama2 => Ok(llama2_tokens(tok, messages)),
            Format::Template(env) => template_tokens(env, tok, messages),
        }
    }
}

/// Python string methods that Hugging Face templates call (`strip`, `startswith`...), which
/// minijinja does not have.
fn python_string_methods(
    _: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value};
    let unknown = || {
        Error::new(
            ErrorKind::UnknownMethod,
            format!("cannot call {method} on {value}"),
        )
    };
    let Some(s) = value.as_str() else {
        return Err(unknown());
    };
    let arg = |i: usize| args.get(i).and_then(Value::as_str);
    let out = match (method, args.len()) {
        ("strip", 0) => Value::from(s.trim()),
        ("lstrip", 0) => Value::from(s.trim_start()),
        ("rstrip", 0) => Value::from(s.trim_end()),
        ("upper", 0) => Value::from(s.to_uppercase()),
        ("lower", 0) => Value::from(s.to_lowercase()),
        ("startswith", 1) => Value::from(arg(0).is_some_and(|p| s.starts_with(p))),
        ("endswith", 1) => Value::from(arg(0).is_some_and(|p| s.ends_with(p))),
        _ => return Err(unknown()),
    };
    Ok(out)
}

/// Llama 2's chat format, built from ids: BOS and EOS are ids, the rest is plain text.
pub fn llama2_tokens(tok: &Tokenizer, messages: &[Message]) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut system: Option<&str> = None;
    for m in messages {
        match m.role {
            Role::System => system = Some(&m.content),
            Role::User => {
                ids.extend(tok.bos_id());
                let text = match system.take() {
                    Some(sys) => format!(
                        "[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{} [/INST]",
                        m.content.trim()
                    ),
                    None => format!("[INST] {} [/INST]", m.content.trim()),
                };
                ids.extend(tok.encode(&text, false));
            }
            Role::Assistant => {
                match &m.ids {
                    Some(answer) => ids.extend_from_slice(answer),
                    None => ids.extend(tok.encode(m.content.trim(), false)),
                }
                ids.extend(tok.eos_id());
            }
        }
    }
    ids
}

/// Renders a chat template with each message's content replaced by a sentinel, splits the
/// result at the BOS/EOS strings the template wrote (which become ids), puts the contents back
/// and tokenizes the text runs as plain text.
fn template_tokens(
    env: &minijinja::Environment<'static>,
    tok: &Tokenizer,
    messages: &[Message],
) -> Result<Vec<u32>> {
    let bos = tok.bos_id().map(|id| tok.piece(id).to_string());
    let eos = tok.eos_id().map(|id| tok.piece(id).to_string());
    let msgs: Vec<minijinja::Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut map = std::collections::BTreeMap::new();
            map.insert("role", minijinja::Value::from(m.role.name()));
            map.insert("content", minijinja::Value::from(sentinel(i)));
            minijinja::Value::from(map)
        })
        .collect();
    let add_generation_prompt = messages.last().is_some_and(|m| m.role == Role::User);
    let rendered = env
        .get_template(TEMPLATE_NAME)
        .and_then(|t| {
            t.render(minijinja::context! {
                messages => msgs,
                bos_token => bos.clone().unwrap_or_default(),
                eos_token => eos.clone().unwrap_or_default(),
                add_generation_prompt => add_generation_prompt,
            })
        })
        .context("rendering tokenizer.chat_template")?;

    let mut specials: Vec<(&str, u32)> = Vec::new();
    for (s, id) in [(&bos, tok.bos_id()), (&eos, tok.eos_id())] {
        if let (Some(s), Some(id)) = (s, id)
            && !s.is_empty()
        {
            specials.push((s, id));
        }
    }
    let mut ids = Vec::new();
    let mut text = String::new();
    let mut rest = rendered.as_str();
    while !rest.is_empty() {
        if let Some(&(s, id)) = specials.iter().find(|(s, _)| rest.starts_with(s)) {
            if !text.is_empty() {
                ids.extend(tok.encode(&text, false));
                text.clear();
            }
            ids.push(id);
            rest = &rest[s.len()..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('\u{F0000}')
            && let Some(end) = after.find('\u{F0001}')
            && let Ok(i) = after[..end].parse::<usize>()
            && let Some(m) = messages.get(i)
        {
            text.push_str(&m.content);
            rest = &after[end + '\u{F0001}'.len_utf8()..];
            continue;
        }
        let ch = rest.chars().next().map_or(1, char::len_utf8);
        text.push_str(&rest[..ch]);
        rest = &rest[ch..];
    }
    if !text.is_empty() {
        ids.extend(tok.encode(&text, false));
    }
    Ok(ids)
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
        let (model, tok, load_time) = load(&args.model.model, kernels)?;
        let format = Format::from_gguf(&Gguf::parse(model.bytes())?)?;
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
    use cinder_convert::vocab::Vocab;

    fn llama2_tokenizer() -> Tokenizer {
        let path = cinder_quant::fixtures::path("sources/tokenizer.model");
        let vocab = Vocab::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Tokenizer::from_vocab(&vocab).unwrap()
    }

    const HF_LLAMA2_TEMPLATE: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    fn conversation() -> Vec<Message> {
        vec![
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "Hi </s> there [INST]"),
            Message::new(Role::Assistant, "Hello!"),
            Message::new(Role::User, "<s>Again?"),
        ]
    }

    #[test]
    fn user_text_with_eos_and_bos_strings_never_yields_control_ids() {
        let tok = llama2_tokenizer();
        let msgs = vec![Message::new(Role::User, "a </s> b <s> c [/INST] d")];
        let ids = llama2_tokens(&tok, &msgs);
        assert_eq!(ids[0], 1, "starts with BOS");
        assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 1);
        assert!(!ids.contains(&2), "no EOS id from user text: {ids:?}");
        assert_eq!(
            tok.decode(&ids),
            "[INST] a </s> b <s> c [/INST] d [/INST]",
            "the markers are ordinary text"
        );
    }

    #[test]
    fn llama2_format_places_system_bos_and_eos_as_ids() {
        let tok = llama2_tokenizer();
        let ids = llama2_tokens(&tok, &conversation());
        let bos: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == 1).collect();
        let eos: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == 2).collect();
        assert_eq!(bos.len(), 2, "{ids:?}");
        assert_eq!(eos.len(), 1);
        assert_eq!(eos[0] + 1, bos[1], "</s><s> between turns");
        let first = tok.decode(&ids[..eos[0]]);
        assert_eq!(
            first,
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi </s> there [INST] [/INST] Hello!"
        );
        assert_eq!(tok.decode(&ids[bos[1]..]), "[INST] <s>Again? [/INST]");
    }

    #[test]
    fn hf_llama2_template_gives_the_builtin_tokens_for_a_first_turn() {
        let tok = llama2_tokenizer();
        let f = Format::template(HF_LLAMA2_TEMPLATE).unwrap();
        let msgs = &conversation()[..2];
        assert_eq!(f.tokens(&tok, msgs).unwrap(), llama2_tokens(&tok, msgs));
    }

    #[test]
    fn hf_llama2_template_makes_bos_and_eos_ids_only_where_the_template_writes_them() {
        let tok = llama2_tokenizer();
        let f = Format::template(HF_LLAMA2_TEMPLATE).unwrap();
        let ids = f.tokens(&tok, &conversation()).unwrap();
        assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 2, "{ids:?}");
        assert_eq!(ids.iter().filter(|&&id| id == 2).count(), 1, "{ids:?}");
        let text = tok.decode(&ids);
        assert!(
            text.contains("Hi </s> there [INST] [/INST] Hello!"),
            "{text:?}"
        );
        assert!(text.ends_with("[INST] <s>Again? [/INST]"), "{text:?}");
    }

    #[test]
    fn template_raise_exception_is_an_error() {
        let tok = llama2_tokenizer();
        let f = Format::template(HF_LLAMA2_TEMPLATE).unwrap();
        let msgs = vec![Message::new(Role::User, "a"), Message::new(Role::User, "b")];
        let err = f.tokens(&tok, &msgs).unwrap_err();
        assert!(format!("{err:#}").contains("must alternate"), "{err:#}");
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
