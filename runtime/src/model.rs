//! [`Model`]: a GGUF file mapped and checked, ready to run; [`Session`]: one conversation's
//! KV cache and scratch, evaluating tokens through [`crate::forward::forward`].

use std::path::Path;

use cinder_kernels::Kernels;
use cinder_quant::gguf::Gguf;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::forward::{Logits, State, forward};
use crate::kv_cache::{KvCache, KvType};
use crate::mmap::MappedFile;
use crate::weights::Weights;

/// How far [`Model::load_with_progress`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadProgress<'a> {
    /// The file is mapped and its configuration and tensor table are checked; the matrices
    /// holding `repack_bytes` bytes of the file are repacked next (0: the kernels use the
    /// file's layout, loading is done).
    Checked {
        /// Length of the file.
        file_bytes: u64,
        /// Bytes of the matrices about to be repacked.
        repack_bytes: u64,
    },
    /// One matrix, `bytes` long in the file, is repacked (the sum over all of them is the
    /// `repack_bytes` of [`LoadProgress::Checked`]).
    Repacked {
        /// The tensor's name.
        name: &'a str,
        /// Its bytes in the file.
        bytes: u64,
    },
}

/// A Llama model: the mapped GGUF file, its configuration, views of its weights, and the CPU
/// kernels to run it with.
pub struct Model {
    file: MappedFile,
    config: Config,
    weights: Weights,
    kernels: Kernels,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.file.path())
            .field("config", &self.config)
            .field("kernels", &self.kernels)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Map and check the GGUF file at `path`, with the kernels of [`Kernels::from_env`]
    /// (the best this CPU has unless `CINDER_KERNELS` names one).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let kernels = Kernels::from_env().map_err(|e| Error::BadOption(e.to_string()))?;
        Self::load_with_kernels(path, kernels)
    }

    /// Map and check the GGUF file at `path`, running it with `kernels`.
    pub fn load_with_kernels(path: impl AsRef<Path>, kernels: Kernels) -> Result<Self> {
        Self::load_with_progress(path, kernels, &|_| {})
    }

    /// [`Model::load_with_kernels`], telling `progress` how far it is (for a progress bar:
    /// repacking the matrices of a 7B model takes seconds). `progress` is called from the
    /// loader's worker threads.
    pub fn load_with_progress(
        path: impl AsRef<Path>,
        kernels: Kernels,
        progress: &(dyn Fn(LoadProgress<'_>) + Sync),
    ) -> Result<Self> {
        let path = path.as_ref();
        let file = MappedFile::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_mapped(file, kernels, progress)
    }

    /// A model from the bytes of a GGUF file (copied into an anonymous map), named `path` in
    /// errors: what tests and fuzzers load.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>, kernels: Kernels) -> Result<Self> {
        let path = path.as_ref();
        let file = MappedFile::from_bytes(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_mapped(file, kernels, &|_| {})
    }

    fn from_mapped(
        file: MappedFile,
        kernels: Kernels,
        progress: &(dyn Fn(LoadProgress<'_>) + Sync),
    ) -> Result<Self> {
        let path = &file.path().to_path_buf();
        let (config, weights) = {
            let g = Gguf::parse(file.bytes()).map_err(|source| Error::Gguf {
                path: path.to_path_buf(),
                source,
            })?;
            let config = Config::from_gguf(&g, path)?;
            let mut weights = Weights::from_gguf(&g, &config, path)?;
            let repack = kernels.prefers_strips();
            progress(LoadProgress::Checked {
                file_bytes: file.bytes().len() as u64,
                repack_bytes: if repack { weights.repack_bytes() } else { 0 },
            });
            if repack {
                // The repacked matrices are read from their copies from now on, so each one's
                // mapped pages are released as soon as it is repacked (but a tied output
                // matrix is also the embedding table, whose rows are still read; and the rows
                // of types the kernels dot one column faster on than on the strips stay).
                let embd = weights.token_embd.range();
                weights.repack(
                    file.bytes(),
                    |t| file.will_need(t.range()),
                    |t| {
                        let keep = kernels.prefers_rows_for_one_column(t.ty());
                        if t.range() != embd && !keep {
                            file.release(t.range());
                        }
                        progress(LoadProgress::Repacked {
                            name: t.name(),
                            bytes: t.range().len() as u64,
                        });
                    },
                )?;
            }
            (config, weights)
        };
        Ok(Model {
            file,
            config,
            weights,
            kernels,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The weight tensors (views into [`Model::bytes`]).
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The kernels the model runs with.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// The whole mapped file (parse it with [`Gguf::parse`] for metadata such as the
    /// tokenizer).
    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Options of a [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Positions the KV cache holds; 0 means the model's `context_length`.
    pub ctx_size: usize,
    /// Most tokens one forward pass evaluates; longer inputs are split into batches of this
    /// size.
    pub max_batch: usize,
    /// Element type of the KV cache.
    pub kv_type: KvType,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ctx_size: 0,
            max_batch: 64,
            kv_type: KvType::F16,
        }
    }
}

/// One sequence being evaluated: the KV cache, the scratch buffers and the logits of the last
/// token. Everything is allocated in [`Session::new`]; evaluating never allocates.
#[derive(Debug)]
pub struct Session<'m> {
    model: &'m Model,
    kv: KvCache,
    state: State,
    position: usize,
    /// Logits of the last evaluated token, `[vocab]`.
    last: Vec<f32>,
    has_logits: bool,
}

impl<'m> Session<'m> {
    /// A session on `model` with `opts`.
    pub fn new(model: &'m Model, opts: SessionOptions) -> Result<Self> {
        let c = model.config();
        let ctx_size = if opts.ctx_size == 0 {
            c.context_length
        } else {
            opts.ctx_size
        };
        if opts.max_batch == 0 {
            return Err(Error::BadOption("max_batch must be at least 1".into()));
        }
        // Sizes come from the file or the command line: count the bytes, with checked
        // arithmetic, before allocating any of them.
        crate::memory::SessionMemory::new(c, ctx_size, opts.max_batch, opts.kv_type)?
            .check(0, crate::memory::available())?;
        let max_batch = opts.max_batch.min(ctx_size);
        Ok(Session {
            model,
            kv: KvCache::new(opts.kv_type, c.n_layers, ctx_size, c.kv_dim()),
            state: State::new(c, max_batch, ctx_size),
            position: 0,
            last: vec![0.0; c.vocab_size],
            has_logits: false,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Tokens in the cache: the position the next token is evaluated at.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Positions the cache holds.
    pub fn ctx_size(&self) -> usize {
        self.kv.ctx_size()
    }

    /// Forget every token.
    pub fn reset(&mut self) {
        self.position = 0;
        self.has_logits = false;
    }

    /// Keep only the first `n` tokens (no-op if there are fewer). The logits are cleared: they
    /// belonged to a token that is gone.
    pub fn truncate(&mut self, n: usize) {
        if n < self.position {
            self.position = n;
            self.has_logits = false;
        }
    }

    fn check_room(&self, new: usize) -> Result<()> {
        if self.position + new > self.kv.ctx_size() {
            return Err(Error::ContextFull {
                position: self.position,
                new,
                ctx_size: self.kv.ctx_size(),
            });
        }
        Ok(())
    }

    /// Append `tokens` at the current position (in batches of at most `max_batch`); afterwards
    /// [`Session::logits`] holds the logits predicting the token after the last one.
    pub fn eval(&mut self, tokens: &[u32]) -> Result<()> {
        self.run(tokens, None)
    }

    /// Like [`Session::eval`], and also append to `out` the logits of every token of `tokens`
    /// (`tokens.len() * vocab` values, row `i` predicting the token after `tokens[i]`).
    pub fn eval_all(&mut self, tokens: &[u32], out: &mut Vec<f32>) -> Result<()> {
        out.reserve(tokens.len() * self.model.config().vocab_size);
        self.run(tokens, Some(out))
    }

    fn run(&mut self, tokens: &[u32], mut all: Option<&mut Vec<f32>>) -> Result<()> {
        self.check_room(tokens.len())?;
        let vocab = self.model.config().vocab_size;
        let which = if all.is_some() {
            Logits::All
        } else {
            Logits::Last
        };
        for batch in tokens.chunks(self.state.max_batch()) {
            let n = batch.len();
            // A failed batch leaves the cache as it was before it (its rows are overwritten
            // by the next evaluation at the same position).
            self.has_logits = false;
            forward(
                self.model,
                &mut self.kv,
                &mut self.state,
                batch,
                self.position,
                which,
            )?;
            self.position += n;
            let rows = if which == Logits::All { n } else { 1 };
            let logits = self.state.logits(rows, vocab);
            if let Some(out) = all.as_deref_mut() {
                out.extend_from_slice(logits);
            }
            self.last.copy_from_slice(&logits[(rows - 1) * vocab..]);
            self.has_logits = true;
        }
        Ok(())
    }

    /// Logits of the last evaluated token, `[vocab]` (empty before the first evaluation and
    /// after [`Session::reset`] / [`Session::truncate`]).
    pub fn logits(&self) -> &[f32] {
        if self.has_logits { &self.last } else { &[] }
    }
}

// The CLI may share a model between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};
