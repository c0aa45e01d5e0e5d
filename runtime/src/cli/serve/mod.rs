//! `cinder serve`: an OpenAI-compatible HTTP server.
//!
//! The HTTP side runs on a small tokio runtime (axum): it parses and checks requests,
//! tokenizes prompts on tokio's blocking pool, and turns the compute thread's events into JSON
//! or server-sent events. All model work runs on one compute thread (with its rayon pool of
//! `--threads`), which batches every active request into one forward pass per step (see
//! [`engine`]). The two sides talk through channels only, so a slow model never blocks the
//! async runtime and a gone client is noticed by the compute thread when its channel closes.

mod api;
mod engine;
mod metrics;
mod stop;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use cinder::SessionOptions;
use cinder::batch::Sequences;
use cinder::generate::load_tokenizer;
use cinder::tokenizer::Tokenizer;
use cinder_kernels::Kernels;
use cinder_quant::gguf::Gguf;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use self::api::{ApiError, ChatRequest, CompletionRequest, Generation, Prompt};
use self::engine::{Event, Finish, Job, Msg, TokenLogprob};
use self::metrics::Metrics;
use super::run::{ModelArgs, load_model};
use cinder::chat_format::{Format, Message, Role};

/// Arguments of `cinder serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    pub port: u16,
    /// Requests generated together (slots); each slot has its own KV cache of --ctx-size.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// Requests that may wait for a slot; past that the server answers 503.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every request except /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Model name shown by /v1/models and in responses (default: the file's name).
    #[arg(long, value_name = "NAME")]
    pub alias: Option<String>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
}

/// The model's tokenizer and chat format, once loaded.
struct Loaded {
    tok: Tokenizer,
    format: Format,
    ctx: usize,
}

/// What the handlers share.
struct App {
    loaded: OnceLock<Arc<Loaded>>,
    jobs: Sender<Msg>,
    metrics: Arc<Metrics>,
    api_key: Option<String>,
    model_name: String,
    created: u64,
    /// Requests held at once: slots plus queue.
    limit: u64,
    ids: AtomicU64,
}

type Shared = Arc<App>;

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn run(args: &Args, kernels: &Kernels) -> Result<()> {
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let opts = SessionOptions {
        max_batch: args.model.batch_size.max(args.parallel),
        ..args.model.session_options()
    };
    // Refuse slots that cannot fit before binding the port and loading the model.
    check_slots_fit(args, kernels, &opts)?;
    let pool = args.model.thread_pool()?;
    let model_name = args.alias.clone().unwrap_or_else(|| {
        args.model
            .model
            .file_name()
            .map_or_else(|| "model".into(), |f| f.to_string_lossy().into_owned())
    });
    let (jobs, rx) = std::sync::mpsc::channel::<Msg>();
    let metrics = Arc::new(Metrics::default());
    let app = Arc::new(App {
        loaded: OnceLock::new(),
        jobs,
        metrics: Arc::clone(&metrics),
        api_key: args.api_key.clone(),
        model_name,
        created: unix_time(),
        limit: args.parallel.saturating_add(args.queue) as u64,
        ids: AtomicU64::new(0),
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((
            args.host.as_str(),
            args.port,
        )))
        .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    eprintln!("cinder: listening on http://{addr} (loading the model)");

    // The compute thread loads the model (the server answers /health with 503 meanwhile) and
    // then serves requests until told to shut down.
    let (load_failed_tx, load_failed) = tokio::sync::oneshot::channel::<()>();
    let compute = {
        let app = Arc::clone(&app);
        let path: PathBuf = args.model.model.clone();
        let (kernels, parallel) = (*kernels, args.parallel);
        std::thread::Builder::new()
            .name("cinder-compute".into())
            .spawn(move || -> Result<()> {
                pool.install(move || {
                    let loaded = (|| -> Result<_> {
                        let model = load_model(&path, &kernels)?;
                        let tok = load_tokenizer(&model)?;
                        let format = Format::from_gguf(&Gguf::parse(model.bytes())?, model.path())?;
                        Ok((model, tok, format))
                    })();
                    let (model, tok, format) = match loaded {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = load_failed_tx.send(());
                            return Err(e);
                        }
                    };
                    let mut seqs = match Sequences::new(&model, parallel, opts) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = load_failed_tx.send(());
                            return Err(e.into());
                        }
                    };
                    let ctx = seqs.ctx_size();
                    let loaded = Arc::new(Loaded { tok, format, ctx });
                    let _ = app.loaded.set(Arc::clone(&loaded));
                    eprintln!(
                        "cinder: model loaded: {parallel} slots of {ctx} tokens, KV caches {} MiB",
                        seqs.kv_bytes() >> 20
                    );
                    engine::run(&mut seqs, &loaded.tok, &rx, &app.metrics);
                    Ok(())
                })
            })
            .context("starting the compute thread")?
    };

    let router = router(Arc::clone(&app), args.max_body_bytes);
    let served = runtime.block_on(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal(load_failed))
            .await
    });
    // Every connection is closed: the streams in flight have ended.
    let _ = app.jobs.send(Msg::Shutdown);
    let computed = compute
        .join()
        .map_err(|_| anyhow::anyhow!("the compute thread panicked"))?;
    computed?;
    served.context("serving")?;
    eprintln!("cinder: stopped");
    Ok(())
}

/// Errs, naming `--parallel` and `-c`, unless `args.parallel` slots of `-c` tokens each (KV
/// caches, logits and the batch scratch of `opts`) fit in the memory available.
fn check_slots_fit(args: &Args, kernels: &Kernels, opts: &SessionOptions) -> Result<()> {
    match cinder::memory::check_file_slots(&args.model.model, kernels, args.parallel, opts) {
        Err(cinder::Error::OutOfMemory {
            slots,
            ctx_size,
            needed,
            other,
            available,
            largest,
        }) => {
            let human = cinder::memory::human_bytes;
            let repacked = if other > 0 {
                format!(", with {} for the repacked weights", human(other))
            } else {
                String::new()
            };
            bail!(
                "--parallel {slots} slots of -c {ctx_size} tokens need {} of memory (KV caches \
                 and batch scratch{repacked}), but {} is available; the largest -c that fits \
                 at --parallel {slots} is {largest} tokens",
                human(needed),
                human(available)
            )
        }
        r => Ok(r?),
    }
}

/// Resolves on Ctrl-C, SIGTERM, or a failed model load.
async fn shutdown_signal(load_failed: tokio::sync::oneshot::Receiver<()>) {
    let load_failed = async {
        // A sender dropped without sending means the model loaded: never resolve.
        if load_failed.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("cinder: interrupted, finishing the requests in flight"),
        _ = term => eprintln!("cinder: terminated, finishing the requests in flight"),
        _ = load_failed => {}
    }
}

fn router(app: Shared, max_body: usize) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), auth))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("not_found"),
        format!("no such endpoint: {}", req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        Some("method_not_allowed"),
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// `--api-key`: every path but /health needs `Authorization: Bearer KEY`.
async fn auth(State(app): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.api_key
        && !matches!(req.uri().path(), "/health" | "/v1/health")
    {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), key.as_bytes())) {
            let (message, code) = if given.is_none() {
                (
                    "missing API key: send 'Authorization: Bearer KEY'",
                    "missing_api_key",
                )
            } else {
                ("incorrect API key", "invalid_api_key")
            };
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                Some(code),
                message,
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Compares without stopping at the first difference.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn body_error(r: BytesRejection) -> ApiError {
    let status = r.status();
    let code = (status == StatusCode::PAYLOAD_TOO_LARGE).then_some("request_too_large");
    ApiError::new(status, "invalid_request_error", code, r.body_text())
}

fn loaded(app: &App) -> Result<Arc<Loaded>, ApiError> {
    app.loaded.get().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            Some("model_loading"),
            "the model is loading",
        )
    })
}

async fn health(State(app): State<Shared>) -> Response {
    match loaded(&app) {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn models(State(app): State<Shared>) -> Response {
    Json(json!({
        "object": "list",
        "data": [{
            "id": app.model_name,
            "object": "model",
            "created": app.created,
            "owned_by": "cinder",
        }],
    }))
    .into_response()
}

async fn metrics_text(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn tokenize(
    State(app): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let l = loaded(&app)?;
    let req: api::TokenizeRequest = api::parse(&body)?;
    let add_special = req.add_special.unwrap_or(false);
    let with_pieces = req.with_pieces.unwrap_or(false);
    let tokens = blocking(move || {
        let ids = l.tok.encode(&req.content, add_special && l.tok.add_bos());
        if with_pieces {
            ids.iter()
                .map(|&id| json!({"id": id, "piece": engine::token_text(&l.tok, id)}))
                .collect()
        } else {
            ids.iter().map(|&id| json!(id)).collect::<Vec<Value>>()
        }
    })
    .await?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

async fn detokenize(
    State(app): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let l = loaded(&app)?;
    let req: api::DetokenizeRequest = api::parse(&body)?;
    check_ids(&req.tokens, l.tok.n_vocab())?;
    let content = blocking(move || l.tok.decode(&req.tokens)).await?;
    Ok(Json(json!({ "content": content })).into_response())
}

fn check_ids(ids: &[u32], vocab: usize) -> Result<(), ApiError> {
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(id) => Err(ApiError::bad_request(format!(
            "token id {id} is out of range (vocabulary of {vocab})"
        ))),
        None => Ok(()),
    }
}

/// Runs CPU work (tokenizing, rendering templates) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            format!("internal error: {e}"),
        )
    })
}

/// Which endpoint a request came to: decides the JSON shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

async fn chat_completions(
    State(app): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let l = loaded(&app)?;
    let req: ChatRequest = api::parse(&body)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("'messages' must not be empty"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}].role '{other}' is not one of system, user, assistant"
                )));
            }
        };
        let content = match &m.content {
            None => String::new(),
            Some(api::Content::Text(t)) => t.clone(),
            Some(api::Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => text.push_str(t),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "messages[{i}]: only text content parts are supported, not '{}'",
                                p.kind
                            )));
                        }
                    }
                }
                text
            }
        };
        messages.push(Message {
            role,
            content,
            ids: None,
        });
    }
    let generation = req.common.generation(l.tok.n_vocab())?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), n) => Some(top_logprobs(n.unwrap_or(0))?),
        _ => None,
    };
    let prompt = {
        let l = Arc::clone(&l);
        blocking(move || l.format.tokens(&l.tok, &messages))
            .await?
            .map_err(|e| ApiError::bad_request(format!("formatting the messages: {e:#}")))?
    };
    submit(&app, &l, Kind::Chat, prompt, generation, logprobs, false).await
}

fn top_logprobs(n: i64) -> Result<usize, ApiError> {
    if !(0..=api::MAX_TOP_LOGPROBS).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "top_logprobs must be between 0 and {}, not {n}",
            api::MAX_TOP_LOGPROBS
        )));
    }
    Ok(n as usize)
}

async fn completions(
    State(app): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let l = loaded(&app)?;
    let req: CompletionRequest = api::parse(&body)?;
    if req.echo == Some(true) {
        return Err(ApiError::bad_request("'echo' is not supported"));
    }
    let generation = req.common.generation(l.tok.n_vocab())?;
    let logprobs = req.logprobs.map(top_logprobs).transpose()?;
    let prompt = match req.prompt {
        Prompt::Tokens(ids) => {
            check_ids(&ids, l.tok.n_vocab())?;
            ids
        }
        Prompt::Text(text) => {
            let l = Arc::clone(&l);
            blocking(move || l.tok.encode(&text, l.tok.add_bos())).await?
        }
        Prompt::Texts(mut texts) if texts.len() == 1 => {
            let text = texts.pop().unwrap_or_default();
            let l = Arc::clone(&l);
            blocking(move || l.tok.encode(&text, l.tok.add_bos())).await?
        }
        Prompt::Texts(_) => {
            return Err(ApiError::bad_request(
                "'prompt' must be one string or one list of token ids",
            ));
        }
    };
    submit(&app, &l, Kind::Text, prompt, generation, logprobs, true).await
}

/// Checks the prompt's length, queues the request and answers it (streaming or not).
async fn submit(
    app: &App,
    l: &Loaded,
    kind: Kind,
    prompt: Vec<u32>,
    g: Generation,
    logprobs: Option<usize>,
    continue_text: bool,
) -> Result<Response, ApiError> {
    if prompt.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    if prompt.len() >= l.ctx {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
            format!(
                "This model's maximum context length is {} tokens. However, your prompt is {} \
                 tokens, which leaves no room for a completion.",
                l.ctx,
                prompt.len()
            ),
        ));
    }
    let Some(permit) = app.metrics.admit(app.limit) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            Some("server_overloaded"),
            "the server is busy: every slot and queue place is taken; retry later",
        ));
    };
    let mut logit_bias = g.logit_bias;
    if g.ignore_eos
        && let Some(eos) = l.tok.eos_id()
    {
        logit_bias.push((eos, f32::NEG_INFINITY));
    }
    let (tx, rx) = unbounded_channel();
    let prompt_tokens = prompt.len();
    let job = Job {
        prompt,
        sampling: g.sampling,
        logit_bias,
        max_tokens: g.max_tokens,
        stop: g.stop,
        logprobs,
        continue_text,
        tx,
        _permit: permit,
    };
    if app.jobs.send(Msg::Job(Box::new(job))).is_err() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            None,
            "the server is shutting down",
        ));
    }
    let n = app.ids.fetch_add(1, Ordering::Relaxed);
    let out = Output {
        kind,
        id: match kind {
            Kind::Chat => format!("chatcmpl-{:x}{n:x}", app.created),
            Kind::Text => format!("cmpl-{:x}{n:x}", app.created),
        },
        created: unix_time(),
        model: app.model_name.clone(),
        logprobs: logprobs.is_some(),
        include_usage: g.include_usage,
        prompt_tokens,
    };
    if g.stream {
        Ok(stream(out, rx))
    } else {
        whole(out, rx).await
    }
}

/// The fixed parts of a response.
struct Output {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    logprobs: bool,
    include_usage: bool,
    prompt_tokens: usize,
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

fn engine_failed(message: String) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        None,
        message,
    )
}

/// Logprobs of some tokens in the endpoint's shape (`text_offset` starting at `offset`).
fn logprobs_json(kind: Kind, lps: &[TokenLogprob], mut offset: usize) -> Value {
    match kind {
        Kind::Chat => json!({"content": lps.iter().map(|t| json!({
            "token": t.token,
            "logprob": t.logprob,
            "bytes": t.token.as_bytes(),
            "top_logprobs": t.top.iter().map(|(s, lp)| json!({
                "token": s, "logprob": lp, "bytes": s.as_bytes(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()}),
        Kind::Text => {
            let mut offsets = Vec::with_capacity(lps.len());
            for t in lps {
                offsets.push(offset);
                offset += t.token.len();
            }
            json!({
                "tokens": lps.iter().map(|t| &t.token).collect::<Vec<_>>(),
                "token_logprobs": lps.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                "top_logprobs": lps.iter().map(|t| t.top.iter()
                    .map(|(s, lp)| (s.clone(), json!(lp)))
                    .collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
                "text_offset": offsets,
            })
        }
    }
}

/// Collects the whole answer into one JSON object.
async fn whole(out: Output, mut rx: UnboundedReceiver<Event>) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut lps = Vec::new();
    let (finish, completion) = loop {
        match rx.recv().await {
            Some(Event::Text { text: t, logprob }) => {
                text.push_str(&t);
                lps.extend(logprob);
            }
            Some(Event::Done {
                finish,
                completion_tokens,
                ..
            }) => break (finish, completion_tokens),
            Some(Event::Failed(m)) => return Err(engine_failed(m)),
            None => return Err(engine_failed("the request was dropped".into())),
        }
    };
    let logprobs = if out.logprobs {
        logprobs_json(out.kind, &lps, 0)
    } else {
        Value::Null
    };
    let choice = match out.kind {
        Kind::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": logprobs,
            "finish_reason": finish.as_str(),
        }),
        Kind::Text => json!({
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish.as_str(),
        }),
    };
    Ok(Json(json!({
        "id": out.id,
        "object": match out.kind { Kind::Chat => "chat.completion", Kind::Text => "text_completion" },
        "created": out.created,
        "model": out.model,
        "choices": [choice],
        "usage": usage(out.prompt_tokens, completion),
    }))
    .into_response())
}

/// Streaming state: the engine's events become OpenAI chunks, then `[DONE]`.
struct Streamer {
    out: Output,
    rx: UnboundedReceiver<Event>,
    queue: std::collections::VecDeque<String>,
    started: bool,
    done: bool,
    offset: usize,
}

impl Streamer {
    fn chunk(&self, text: Option<&str>, lps: &[TokenLogprob], finish: Option<Finish>) -> String {
        let logprobs = if self.out.logprobs && !lps.is_empty() {
            logprobs_json(self.out.kind, lps, self.offset)
        } else {
            Value::Null
        };
        let finish = finish.map(Finish::as_str);
        let (object, choice) = match self.out.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if !self.started {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                (
                    "chat.completion.chunk",
                    json!({"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}),
                )
            }
            Kind::Text => (
                "text_completion",
                json!({"index": 0, "text": text.unwrap_or(""), "logprobs": logprobs, "finish_reason": finish}),
            ),
        };
        let mut v = json!({
            "id": self.out.id,
            "object": object,
            "created": self.out.created,
            "model": self.out.model,
            "choices": [choice],
        });
        if self.out.include_usage {
            v["usage"] = Value::Null;
        }
        v.to_string()
    }

    fn on(&mut self, ev: Option<Event>) {
        match ev {
            Some(Event::Text { text, logprob }) => {
                if text.is_empty() && logprob.is_none() {
                    return;
                }
                let lps: Vec<TokenLogprob> = logprob.into_iter().collect();
                let c = self.chunk(Some(&text), &lps, None);
                self.started = true;
                self.offset += text.len();
                self.queue.push_back(c);
            }
            Some(Event::Done {
                finish,
                completion_tokens,
                ..
            }) => {
                let c = self.chunk(None, &[], Some(finish));
                self.queue.push_back(c);
                if self.out.include_usage {
                    let u = json!({
                        "id": self.out.id,
                        "object": match self.out.kind { Kind::Chat => "chat.completion.chunk", Kind::Text => "text_completion" },
                        "created": self.out.created,
                        "model": self.out.model,
                        "choices": [],
                        "usage": usage(self.out.prompt_tokens, completion_tokens),
                    });
                    self.queue.push_back(u.to_string());
                }
                self.queue.push_back("[DONE]".into());
                self.done = true;
            }
            Some(Event::Failed(m)) => {
                self.queue.push_back(engine_failed(m).body().to_string());
                self.queue.push_back("[DONE]".into());
                self.done = true;
            }
            None => {
                let e = engine_failed("the request was dropped".into());
                self.queue.push_back(e.body().to_string());
                self.queue.push_back("[DONE]".into());
                self.done = true;
            }
        }
    }
}

fn stream(out: Output, rx: UnboundedReceiver<Event>) -> Response {
    let s = Streamer {
        out,
        rx,
        queue: Default::default(),
        started: false,
        done: false,
        offset: 0,
    };
    let events = futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(data) = s.queue.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), s));
            }
            if s.done {
                return None;
            }
            let ev = s.rx.recv().await;
            s.on(ev);
        }
    });
    Sse::new(events).into_response()
}
