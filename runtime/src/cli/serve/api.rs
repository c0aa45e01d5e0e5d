//! The OpenAI request bodies (what `serde` reads: unknown fields are ignored, a wrong type is
//! an error), the checks the types cannot express, and OpenAI-style errors.

use std::collections::HashMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cinder::sampler::SamplerParams;
use serde::Deserialize;
use serde_json::json;

/// An error answered as `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
        }
    }

    /// Any status, with its type and code.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            code,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": null,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// The fields chat and text completions share.
#[derive(Debug, Deserialize, Default)]
pub struct Common {
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    #[serde(default)]
    pub logit_bias: Option<HashMap<String, f32>>,
    #[serde(default)]
    pub n: Option<i64>,
    /// llama-server's extension: never end at the end-of-sequence token.
    #[serde(default)]
    pub ignore_eos: Option<bool>,
}

/// A message's content: a string, or a list of parts of which only text is supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    #[serde(flatten)]
    pub common: Common,
}

/// `prompt`: a string, a list of token ids, or a list of one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
    Texts(Vec<String>),
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    #[serde(default)]
    pub logprobs: Option<i64>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(flatten)]
    pub common: Common,
}

/// `POST /tokenize` (llama-server's shape).
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    #[serde(default)]
    pub add_special: Option<bool>,
    #[serde(default)]
    pub with_pieces: Option<bool>,
}

/// `POST /detokenize` (llama-server's shape).
#[derive(Debug, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<u32>,
}

/// Most `top_logprobs` (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// What a request asks of the generator, checked.
#[derive(Debug, Clone)]
pub struct Generation {
    pub sampling: SamplerParams,
    pub logit_bias: Vec<(u32, f32)>,
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub ignore_eos: bool,
}

fn finite(name: &str, x: Option<f32>) -> Result<Option<f32>, ApiError> {
    match x {
        Some(v) if !v.is_finite() => Err(ApiError::bad_request(format!(
            "'{name}' must be a finite number"
        ))),
        _ => Ok(x),
    }
}

impl Common {
    /// The generation settings, with llama.cpp's sampling defaults for what is not given.
    pub fn generation(&self, vocab: usize) -> Result<Generation, ApiError> {
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::bad_request(format!(
                "'n' must be 1 (one choice per request), not {n}"
            )));
        }
        let max = self.max_completion_tokens.or(self.max_tokens);
        let max_tokens = match max {
            Some(n) if n <= 0 => {
                let field = if self.max_completion_tokens.is_some() {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                return Err(ApiError::bad_request(format!(
                    "'{field}' must be at least 1, not {n}"
                )));
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let mut p = SamplerParams::default();
        if let Some(t) = finite("temperature", self.temperature)? {
            if t < 0.0 {
                return Err(ApiError::bad_request("'temperature' must be at least 0"));
            }
            p.temperature = t;
        }
        if let Some(v) = finite("top_p", self.top_p)? {
            if !(0.0..=1.0).contains(&v) {
                return Err(ApiError::bad_request("'top_p' must be between 0 and 1"));
            }
            p.top_p = v;
        }
        if let Some(v) = finite("min_p", self.min_p)? {
            if !(0.0..=1.0).contains(&v) {
                return Err(ApiError::bad_request("'min_p' must be between 0 and 1"));
            }
            p.min_p = v;
        }
        if let Some(k) = self.top_k {
            // 0 or less keeps every token, as llama.cpp's top_k.
            p.top_k = usize::try_from(k).unwrap_or(0);
        }
        if let Some(v) = finite("presence_penalty", self.presence_penalty)? {
            p.presence_penalty = v;
        }
        if let Some(v) = finite("frequency_penalty", self.frequency_penalty)? {
            p.frequency_penalty = v;
        }
        if let Some(v) = finite("repeat_penalty", self.repeat_penalty)? {
            if v <= 0.0 {
                return Err(ApiError::bad_request("'repeat_penalty' must be positive"));
            }
            p.repeat_penalty = v;
        }
        p.seed = match self.seed {
            Some(s) => s as u64,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        let mut logit_bias = Vec::new();
        for (key, &bias) in self.logit_bias.iter().flatten() {
            let id = key
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocab)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "'logit_bias' key '{key}' is not a token id below {vocab}"
                    ))
                })?;
            if !bias.is_finite() && bias != f32::NEG_INFINITY {
                return Err(ApiError::bad_request("'logit_bias' values must be numbers"));
            }
            logit_bias.push((id, bias.clamp(-100.0, 100.0)));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        Ok(Generation {
            sampling: p,
            logit_bias,
            max_tokens,
            stop,
            stream: self.stream.unwrap_or(false),
            include_usage: self
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            ignore_eos: self.ignore_eos.unwrap_or(false),
        })
    }
}

/// Parses a JSON body into `T`: malformed JSON, invalid UTF-8 and wrong types are 400s naming
/// what is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "invalid request",
            _ => "malformed JSON",
        };
        ApiError::bad_request(format!("{what}: {e}"))
    })
}
