//! Chat formats: how a conversation becomes token ids, with Llama 2's built-in format or a
//! GGUF's `tokenizer.chat_template` (a Hugging Face Jinja template, rendered by minijinja under
//! a fuel limit). BOS and EOS are inserted as token ids; message contents are always tokenized
//! as plain text, so a user typing `</s>` or `[INST]` cannot forge control tokens. A template
//! is data from the file: before it is compiled, [`guard`] rewrites it so that every value it
//! builds and every byte it writes is checked against a per-rendering budget.

mod guard;

use std::path::Path;

use cinder_quant::gguf::{Gguf, Value, keys};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The system prompt.
    System,
    /// The person typing.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in chat templates.
    pub fn name(self) -> &'static str {
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
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
    /// The tokens an assistant answer was generated as (used instead of re-tokenizing).
    pub ids: Option<Vec<u32>>,
}

impl Message {
    /// A message of `role` saying `content`.
    pub fn new(role: Role, content: &str) -> Self {
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

/// Most template instructions one rendering runs (minijinja's fuel): Hugging Face templates
/// spend tens per message, so this is ample for thousands of messages and stops a template
/// that loops (`range` inside `range`) within a fraction of a second.
const TEMPLATE_FUEL: u64 = 100_000;

/// Most bytes a rendering writes, before and per message. Contents are rendered as short
/// sentinels (see [`sentinel`]), so a real template writes its markup and little else; this
/// stops one that loops over large strings before it fills memory.
const TEMPLATE_OUTPUT_BASE: usize = 64 << 10;
const TEMPLATE_OUTPUT_PER_MESSAGE: usize = 1 << 10;

/// Largest value (a string, or a list or map as printed) a rendering may build, before and per
/// message: the guards refuse `'a' * 100000000`, and any value that prints past it.
const TEMPLATE_VALUE_BASE: usize = 32 << 10;
const TEMPLATE_VALUE_PER_MESSAGE: usize = 256;

/// Most bytes a rendering may build and write in all (strings, printed lists, template text
/// written in loops and macros), before and per message; per message the template's own
/// length is allowed on top, for loops whose bodies hold a lot of text.
const TEMPLATE_BUDGET_BASE: usize = 4 << 20;
const TEMPLATE_BUDGET_PER_MESSAGE: usize = 16 << 10;

/// Collects a rendering, refusing writes past `limit` bytes.
struct Bounded {
    out: String,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(format!(
                "the template writes more than {} bytes",
                self.limit
            )));
        }
        // minijinja writes whole strings; anything else is refused rather than mangled.
        let s = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.out.push_str(s);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Marks where message `i`'s content goes in a rendered template: private-use characters a
/// template does not produce and `strip()` does not remove.
fn sentinel(i: usize) -> String {
    format!("\u{F0000}{i}\u{F0001}")
}

impl Format {
    /// The chat template of the GGUF file `g` (read from `path`) if it has one, else Llama
    /// 2's format.
    pub fn from_gguf(g: &Gguf<'_>, path: &Path) -> Result<Self> {
        match g.get(keys::TOKENIZER_CHAT_TEMPLATE) {
            Some(Value::Str(source)) => Self::template(source),
            Some(v) => Err(Error::BadKey {
                path: path.to_path_buf(),
                key: keys::TOKENIZER_CHAT_TEMPLATE,
                reason: format!("is {}, expected string", v.type_description()),
            }),
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
        // A template is data from the file: bound the instructions one rendering may run, and
        // (through the rewrite's guards) the bytes it may build and write.
        env.set_fuel(Some(TEMPLATE_FUEL));
        guard::install(&mut env);
        let parsing = |source| Error::ChatTemplate {
            action: "parsing",
            source,
        };
        let guarded = guard::rewrite(source).map_err(parsing)?;
        env.add_template_owned(TEMPLATE_NAME, guarded)
            .map_err(parsing)?;
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
            format!("cannot call {method} on a {}", value.kind()),
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

/// Renders the template of `env` (made by [`Format::template`]) under its limits: fuel, the
/// output limit and the guards' budget, all sized by the number of messages.
fn render(
    env: &minijinja::Environment<'static>,
    messages: Vec<minijinja::Value>,
    bos: &str,
    eos: &str,
    add_generation_prompt: bool,
) -> std::result::Result<String, minijinja::Error> {
    let n = messages.len();
    let mut out = Bounded {
        out: String::new(),
        limit: TEMPLATE_OUTPUT_BASE + TEMPLATE_OUTPUT_PER_MESSAGE * n,
    };
    let t = env.get_template(TEMPLATE_NAME)?;
    let per_message = TEMPLATE_BUDGET_PER_MESSAGE.saturating_add(t.source().len());
    let value_limit =
        TEMPLATE_VALUE_BASE.saturating_add(n.saturating_mul(TEMPLATE_VALUE_PER_MESSAGE));
    let budget = guard::Budget::new(
        TEMPLATE_BUDGET_BASE.saturating_add(n.saturating_mul(per_message)),
        value_limit,
    );
    guard::with_value_limit(value_limit, || {
        t.render_captured_to(
            minijinja::context! {
                messages => messages,
                bos_token => bos,
                eos_token => eos,
                add_generation_prompt => add_generation_prompt,
                __cinder_budget => minijinja::Value::from_object(budget),
            },
            &mut out,
        )
    })?;
    Ok(out.out)
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
    let rendered = render(
        env,
        msgs,
        bos.as_deref().unwrap_or_default(),
        eos.as_deref().unwrap_or_default(),
        add_generation_prompt,
    )
    .map_err(|source| Error::ChatTemplate {
        action: "rendering",
        source,
    })?;

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
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("must alternate")),
            "{err}: {cause:?}"
        );
    }

    #[test]
    fn template_that_loops_too_long_runs_out_of_fuel() {
        let tok = llama2_tokenizer();
        let f = Format::template(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap();
        let err = f
            .tokens(&tok, &[Message::new(Role::User, "a")])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ChatTemplate {
                    action: "rendering",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn template_that_writes_without_end_is_stopped_by_the_output_limit() {
        let tok = llama2_tokenizer();
        // Few instructions, each writing 14 KB (under the value limit): fuel alone would let it
        // write gigabytes.
        let f = Format::template(
            "{% for a in range(1000) %}{% for b in range(1000) %}{{ range(3000)|join(',') }}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let err = f
            .tokens(&tok, &[Message::new(Role::User, "a")])
            .unwrap_err();
        let text = format!("{:?}", std::error::Error::source(&err));
        assert!(text.contains("more than 66560 bytes"), "{text}");
    }

    /// Message values as `template_tokens` passes them (real text here, not sentinels).
    fn message_values(msgs: &[Message]) -> Vec<minijinja::Value> {
        msgs.iter()
            .map(|m| {
                let mut map = std::collections::BTreeMap::new();
                map.insert("role", minijinja::Value::from(m.role.name()));
                map.insert("content", minijinja::Value::from(m.content.clone()));
                minijinja::Value::from(map)
            })
            .collect()
    }

    /// `source` rendered as cinder renders it (guarded).
    fn render_guarded(source: &str, msgs: &[Message]) -> std::result::Result<String, String> {
        let add = msgs.last().is_some_and(|m| m.role == Role::User);
        match Format::template(source) {
            Ok(Format::Template(env)) => {
                render(&env, message_values(msgs), "<s>", "</s>", add).map_err(|e| format!("{e:#}"))
            }
            Ok(Format::Llama2) => unreachable!(),
            Err(e) => Err(format!("{e}: {:?}", std::error::Error::source(&e))),
        }
    }

    /// `source` rendered by plain minijinja, with the same functions and context.
    fn render_plain(source: &str, msgs: &[Message]) -> std::result::Result<String, String> {
        let add = msgs.last().is_some_and(|m| m.role == Role::User);
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.set_unknown_method_callback(python_string_methods);
        env.render_str(
            source,
            minijinja::context! {
                messages => message_values(msgs),
                bos_token => "<s>",
                eos_token => "</s>",
                add_generation_prompt => add,
            },
        )
        .map_err(|e| format!("{e:#}"))
    }

    /// Templates in the styles of real Hugging Face chat templates (Llama 2 and 3, Mistral,
    /// ChatML, Zephyr, Gemma) and of Jinja features they use.
    const REAL_STYLE_TEMPLATES: &[&str] = &[
        HF_LLAMA2_TEMPLATE,
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
        "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{{- bos_token }}\n{%- set ns = namespace(turns=0, text='') %}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('roles must alternate') }}\n    {%- endif %}\n    {%- if message['role'] not in ['user', 'assistant'] %}{{ raise_exception('bad role') }}{% endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.last and system_message is defined %}\n            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n        {%- else %}\n            {{- '[INST] ' + message['content'] + '[/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content']|trim + eos_token}}\n    {%- endif %}\n    {%- set ns.turns = ns.turns + 1 %}\n    {%- set ns.text = ns.text ~ message.role[:1] %}\n{%- endfor %}\n{{- '' if ns.turns > 0 else 'none' }}{{ ns.text|upper }}",
        "{%- macro render(m, prefix='%}>') -%}\n  {{ prefix }} {{ m.role|upper }}: {{ m.content }}\n{%- endmacro -%}\n{%- macro plain() %} [{{ caller is defined }}] {% endmacro %}\n{%- set users = messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|list -%}\n{% set header %}Users: {{ users|length }} {{ users|join(', ') }}{% endset %}\n{{- header|trim }}{{ plain() }}\n{% filter upper %}{% for m in messages %}{{ render(m) }}|{% endfor %}{% endfilter %}\n{%- for k, v in {'a': 1, 'b': 2}|dictsort %}{{ k ~ '=' ~ (v * 2 + 1) }};{% endfor %}\n{{ ['x', 'y'] * 2 }} {{ ('ab' * 3)|length }} {{ (messages|length) ~ '!' }} {{ 'a' if (1) == 1 else 'b' }} {{ -(2 + 3) * 4 }} {{ [1] + [2, 3] }}\n{%- for i in range(3) if i != 1 %}{{ loop.index }}{% else %}none{% endfor %}\n{{ \"%s-%d\"|format('x', 5) }} {{ 'a\\nb'|indent(2) }} {{ [1, 2, 3, 4]|batch(3, 0)|list }} {{ 'abc'|replace('b', 'BB') }} {{ [1, 2, 3]|slice(2)|list }}\n{{ messages[0].content.strip().startswith('Be') }} {{ (messages[0].content ~ 'x')|lower }} {% with a = 'w' + 'x' %}{{ a }}{% endwith %}",
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ f(5) }}{% for m in messages %}{{ m.content|upper|lower|trim }}{{ m.content.startswith('a') }}{% endfor %}",
    ];

    #[test]
    fn guarded_templates_render_exactly_as_minijinja_renders_them() {
        let msgs = conversation();
        for source in REAL_STYLE_TEMPLATES {
            for n in [1, 2, 4] {
                let guarded = render_guarded(source, &msgs[..n]);
                let plain = render_plain(source, &msgs[..n]);
                let plain = plain
                    .unwrap_or_else(|e| format!("error {}", e.lines().next().unwrap_or_default()));
                let guarded = guarded
                    .unwrap_or_else(|e| format!("error {}", e.lines().next().unwrap_or_default()));
                if plain.starts_with("error") {
                    assert!(
                        guarded.starts_with("error"),
                        "{source}\nplain {plain}\nguarded {guarded}"
                    );
                } else {
                    assert_eq!(guarded, plain, "{source}");
                }
            }
        }
    }

    #[test]
    fn guarded_template_renders_a_long_conversation() {
        let tok = llama2_tokenizer();
        let f = Format::template(HF_LLAMA2_TEMPLATE).unwrap();
        let msgs: Vec<Message> = (0..600)
            .map(|i| {
                Message::new(
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    "hi",
                )
            })
            .collect();
        let ids = f.tokens(&tok, &msgs).unwrap();
        assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 300);
    }

    /// The rendering error of `source` for one user message, as text with its causes.
    fn render_error(source: &str) -> String {
        match render_guarded(source, &[Message::new(Role::User, "a")]) {
            Ok(out) => panic!("{source} rendered {} bytes", out.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn template_repeating_a_string_is_refused_before_building_it() {
        // One instruction used to build 100 MB (0.3-1.2 s), under any fuel limit.
        let big = format!(
            "{{% set x = 555555 * '{}' %}}{{{{ x|length }}}}",
            "a".repeat(180)
        );
        let e = render_error(&big);
        assert!(e.contains("value limit"), "{e}");
        let e = render_error("{% set x = ['a'] * 100000000 %}{{ x|length }}");
        assert!(e.contains("value limit"), "{e}");
    }

    #[test]
    fn template_doubling_values_is_stopped_at_the_value_limit() {
        for source in [
            "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l == ns.l }}",
            "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s|replace('a', 'aa') %}{% endfor %}{{ ns.s|length }}",
            "{% set ns = namespace(s='\\\\') %}{% for i in range(60) %}{% set ns.s = ns.s|pprint %}{% endfor %}{{ ns.s|length }}",
            "{% macro m(s, n) %}{% if n %}{{ m(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ m('ab', 60)|length }}",
        ] {
            let e = render_error(source);
            assert!(e.contains("value limit"), "{source}: {e}");
        }
    }

    #[test]
    fn template_writing_into_captures_is_stopped_by_the_budget() {
        let text = "x".repeat(2000);
        let source = format!(
            "{{% set x %}}{{% for a in range(100) %}}{{% for b in range(50) %}}{text}{{% endfor %}}{{% endfor %}}{{% endset %}}{{{{ x|length }}}}"
        );
        let e = render_error(&source);
        assert!(e.contains("budget"), "{e}");
    }

    #[test]
    fn template_filters_sized_by_arguments_are_refused() {
        for source in [
            "{{ [1]|batch(1000000000000, 'x')|list|length }}",
            "{{ [1]|slice(1000000000000, 'x')|list|length }}",
            "{% set x = 'a\\nb'|indent(1000000000) %}{{ x|length }}",
            "{% set x = '%1000000000s'|format('a') %}{{ x|length }}",
            "{% set x = range(100000)|join('a' * 30000) %}{{ x|length }}",
            "{% set x = range(100000)|map('string')|list %}{{ x|length }}",
        ] {
            let e = render_error(source);
            assert!(e.contains("value limit"), "{source}: {e}");
        }
    }

    #[test]
    fn template_using_guard_names_or_unsupported_blocks_is_refused_at_parsing() {
        for source in [
            "{{ __cinder_value(1) }}",
            "{% set __cinder_budget = 1 %}",
            "{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}",
            "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}x{% endcall %}",
            "{% extends 'x' %}",
        ] {
            assert!(
                matches!(
                    Format::template(source),
                    Err(Error::ChatTemplate {
                        action: "parsing",
                        ..
                    })
                ),
                "{source}"
            );
        }
    }
}
