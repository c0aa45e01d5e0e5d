//! Bounds what a chat template can build. minijinja's fuel counts instructions, but one
//! instruction can do unbounded work: `555555 * 'aaaa'` repeats a string up to 100 MB, `s ~ s`
//! in a loop doubles a string each turn, `[l, l]` doubles how long a list takes to print and
//! compare, and filters take sizes as arguments (`indent(10**9)`, `batch(10**9)`).
//!
//! So before a template is compiled, [`rewrite`] turns every operation that makes a new value
//! into a call of a guard, using minijinja's own parser (its unstable machinery, hence the exact
//! version pin) to find where each expression starts and ends in the source:
//!
//! - `a + b`, `a * b`, `a ~ b` become `__cinder_add(a, b)`, `__cinder_mul(a, b)` and
//!   `__cinder_concat(a, b)`, which check the size of the result before building it;
//! - list and map literals, filter results and call results (functions, macros, methods) are
//!   passed through `__cinder_value`, which refuses a value that prints to more than the value
//!   limit, so no value (a string, or a list however nested) is ever larger than that;
//! - `{{ x }}` becomes `{{ __cinder_emit(x) }}`, a loop's iterable `__cinder_each(it, n)`
//!   (charging the `n` bytes of template text in its body per item) and each macro body starts
//!   with `__cinder_charge(n)`, so text written into captures (`{% set %}` blocks, macro
//!   results) is counted too, and a `{% set %}` block's result passes `__cinder_checked`.
//!
//! Every byte that a guard lets through is charged to a per-rendering budget
//! ([`Budget`]); so a rendering writes and builds at most that budget, and any single
//! instruction reads at most a value limit's worth of bytes. The rewritten template is parsed
//! again and checked (no unguarded `+ * ~`, every literal, filter and call under
//! `__cinder_value`, every loop and macro charged); a template whose rewrite does not check
//! out is refused, never run unguarded. Templates that use the `__cinder_` names, recursive
//! loops, `{% call %}` blocks or template inheritance (which a chat template, with no other
//! templates to load, cannot use) are refused too.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::machinery::{WhitespaceConfig, ast, parse};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Object, Rest, StringInput, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// The prefix of every name the rewrite adds; templates may not use it.
const PREFIX: &str = "__cinder_";
/// The context variable that holds the rendering's [`Budget`].
pub(super) const BUDGET: &str = "__cinder_budget";
/// Deepest expression or statement nesting the rewrite walks.
const MAX_DEPTH: usize = 400;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// What one rendering may still build and write, and the largest value it may hold.
#[derive(Debug)]
pub(super) struct Budget {
    left: AtomicUsize,
    total: usize,
    value_limit: usize,
}

impl Object for Budget {}

impl Budget {
    /// A budget of `total` bytes in which no value prints to more than `value_limit` bytes.
    pub(super) fn new(total: usize, value_limit: usize) -> Self {
        Budget {
            left: AtomicUsize::new(total),
            total,
            value_limit,
        }
    }

    fn of(state: &State) -> Result<Arc<Budget>, Error> {
        state
            .lookup(BUDGET)
            .and_then(|v| v.downcast_object::<Budget>())
            .ok_or_else(|| invalid("the template is rendered without its budget"))
    }

    fn charge(&self, bytes: usize) -> Result<(), Error> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .map(drop)
            .map_err(|_| {
                invalid(format!(
                    "the template builds or writes more than its budget of {} bytes",
                    self.total
                ))
            })
    }

    fn too_large(&self, what: &str) -> Error {
        invalid(format!(
            "{what} would be larger than the template value limit of {} bytes",
            self.value_limit
        ))
    }

    /// How many bytes `v` prints to, if no more than the value limit.
    fn printed_len(&self, v: &Value) -> Option<usize> {
        printed_len(v, self.value_limit)
    }

    /// Checks that `v` prints to at most the value limit, and charges that.
    fn admit(&self, v: &Value, what: &str) -> Result<(), Error> {
        let n = self.printed_len(v).ok_or_else(|| self.too_large(what))?;
        self.charge(n)
    }

    /// Checks that a result of `n` bytes fits the value limit, and charges it.
    fn admit_len(&self, n: Option<usize>, what: &str) -> Result<(), Error> {
        match n {
            Some(n) if n <= self.value_limit => self.charge(n),
            _ => Err(self.too_large(what)),
        }
    }
}

/// Counts printed bytes, failing past a limit (so a huge value is never printed whole).
struct Counter {
    n: usize,
    limit: usize,
}

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.n = self.n.saturating_add(s.len());
        if self.n > self.limit {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// How many bytes `v` prints to (as `{{ v }}` would), if no more than `limit`.
fn printed_len(v: &Value, limit: usize) -> Option<usize> {
    if let Some(s) = v.as_str() {
        return (s.len() <= limit).then_some(s.len());
    }
    let mut c = Counter { n: 0, limit };
    write!(c, "{v}").ok().map(|()| c.n)
}

/// Both operands as `i64`, if both are integers (not floats or booleans, which minijinja's
/// own operators handle).
fn integers(a: &Value, b: &Value) -> Option<(i64, i64)> {
    use minijinja::tests::is_integer;
    if is_integer(a) && is_integer(b) {
        Some((a.as_i64()?, b.as_i64()?))
    } else {
        None
    }
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// Evaluates `a OP b` with minijinja's own operator (for what the guards let through
/// unchanged: numbers, sized sequences, and the errors of unsupported operands).
fn builtin_op(state: &State, expr: &'static str, a: Value, b: Value) -> Result<Value, Error> {
    state
        .env()
        .compile_expression(expr)?
        .eval(minijinja::context! { a => a, b => b })
}

fn guard_add(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        let budget = Budget::of(state)?;
        budget.admit_len(x.len().checked_add(y.len()), "a string sum")?;
        return Ok(Value::from([x, y].concat()));
    }
    if let Some((x, y)) = integers(&a, &b)
        && let Some(sum) = x.checked_add(y)
    {
        return Ok(Value::from(sum));
    }
    if is_seq(&a) && is_seq(&b) {
        let budget = Budget::of(state)?;
        let n = budget
            .printed_len(&a)
            .zip(budget.printed_len(&b))
            .and_then(|(x, y)| x.checked_add(y));
        budget.admit_len(n, "a list sum")?;
    }
    builtin_op(state, "a + b", a, b)
}

fn guard_mul(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    if let Some((x, y)) = integers(&a, &b)
        && let Some(product) = x.checked_mul(y)
    {
        return Ok(Value::from(product));
    }
    let repeated = if a.as_str().is_some() || is_seq(&a) {
        Some((&a, &b))
    } else if b.as_str().is_some() || is_seq(&b) {
        Some((&b, &a))
    } else {
        None
    };
    if let Some((x, n)) = repeated
        && let Some(n) = n.as_usize()
    {
        let budget = Budget::of(state)?;
        let len = budget.printed_len(x).and_then(|len| len.checked_mul(n));
        budget.admit_len(len, "a repetition")?;
        if let Some(s) = x.as_str() {
            return Ok(Value::from(s.repeat(n)));
        }
    }
    builtin_op(state, "a * b", a, b)
}

fn guard_concat(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    let budget = Budget::of(state)?;
    let n = budget
        .printed_len(&a)
        .zip(budget.printed_len(&b))
        .and_then(|(x, y)| x.checked_add(y));
    budget.admit_len(n, "a `~` concatenation")?;
    Ok(Value::from(format!("{a}{b}")))
}

/// A value made by a literal, a filter or a call: refused if it prints to more than the limit.
fn guard_value(state: &State, v: Value) -> Result<Value, Error> {
    Budget::of(state)?.admit(&v, "a value")?;
    Ok(v)
}

/// The result of a `{% set %}` block.
fn guard_checked(state: &State, v: Value) -> Result<Value, Error> {
    guard_value(state, v)
}

/// What `{{ v }}` writes (into the output or into a capture).
fn guard_emit(state: &State, v: Value) -> Result<Value, Error> {
    Budget::of(state)?.admit(&v, "a written value")?;
    Ok(v)
}

/// A loop's iterable, charging the template text of the loop's body for each item.
fn guard_each(state: &State, it: Value, text_per_item: usize) -> Result<Value, Error> {
    if text_per_item > 0 {
        let items = match it.len() {
            Some(n) => n,
            None => it.try_iter().map_or(0, Iterator::count),
        };
        Budget::of(state)?.charge(items.saturating_mul(text_per_item))?;
    }
    Ok(it)
}

/// A macro call, charging the template text of its body.
fn guard_charge(state: &State, text: usize) -> Result<Value, Error> {
    Budget::of(state)?.charge(text)?;
    Ok(Value::from(""))
}

// Filters whose arguments size their result: checked before minijinja's own runs.

fn filter_join(
    state: &State,
    value: &Value,
    joiner: Option<StringInput<'_>>,
) -> Result<Value, Error> {
    let budget = Budget::of(state)?;
    if let Ok(items) = value.try_iter() {
        let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
        let mut total = Some(0usize);
        for (i, item) in items.enumerate() {
            total = total
                .zip(budget.printed_len(&item))
                .and_then(|(t, n)| t.checked_add(n)?.checked_add(if i > 0 { sep } else { 0 }))
                .filter(|&t| t <= budget.value_limit);
            if total.is_none() {
                break;
            }
        }
        budget.admit_len(total, "a join")?;
    }
    minijinja::filters::join(state, value, joiner)
}

fn filter_replace(
    state: &State,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
) -> Result<Value, Error> {
    let budget = Budget::of(state)?;
    let (s, f, t) = (value.as_str(), from.as_str(), to.as_str());
    let places = if f.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(f).count()
    };
    let len = places
        .checked_mul(t.len())
        .and_then(|added| added.checked_add(s.len()));
    budget.admit_len(len, "a replace")?;
    minijinja::filters::replace(state, value, from, to)
}

thread_local! {
    /// The value limit of the rendering running on this thread, for the one checked filter
    /// whose arguments leave no room for the state (`indent` takes five).
    static VALUE_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `f` (a rendering) with its value limit visible to [`filter_indent`].
pub(super) fn with_value_limit<R>(value_limit: usize, f: impl FnOnce() -> R) -> R {
    let before = VALUE_LIMIT.replace(value_limit);
    let r = f();
    VALUE_LIMIT.set(before);
    r
}

fn filter_indent(
    value: StringInput<'_>,
    width: Option<usize>,
    indent_first_line: Option<bool>,
    indent_blank_lines: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let w = match width {
        Some(w) => w,
        None => kwargs.get::<Option<usize>>("width")?.unwrap_or(4),
    };
    let lines = value.as_str().split('\n').count();
    let len = lines
        .checked_mul(w)
        .and_then(|added| added.checked_add(value.as_str().len()));
    let limit = VALUE_LIMIT.get();
    if len.is_none_or(|len| len > limit) {
        return Err(invalid(format!(
            "an indent would be larger than the template value limit of {limit} bytes"
        )));
    }
    minijinja::filters::indent(value, width, indent_first_line, indent_blank_lines, kwargs)
}

fn filter_format(state: &State, format_str: &Value, args: Rest<Value>) -> Result<Value, Error> {
    // Widths and precisions pad the result: refuse any number over 1000 in the format string.
    let budget = Budget::of(state)?;
    if let Some(f) = format_str.as_str() {
        let mut run = 0usize;
        for c in f.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_digit() {
                run += 1;
            } else {
                if run > 3 {
                    return Err(budget.too_large("a format with a width over 1000"));
                }
                run = 0;
            }
        }
    }
    minijinja::filters::format(state, format_str, args)
}

fn check_count(
    state: &State,
    count: usize,
    fill_with: &Option<Value>,
    what: &str,
) -> Result<(), Error> {
    let budget = Budget::of(state)?;
    let fill = fill_with
        .as_ref()
        .map_or(Some(1), |f| budget.printed_len(f).map(|n| n.max(1)));
    budget.admit_len(fill.and_then(|f| f.checked_mul(count)), what)
}

fn filter_batch(
    state: &State,
    value: Value,
    count: usize,
    fill_with: Option<Value>,
) -> Result<Value, Error> {
    check_count(state, count, &fill_with, "a batch")?;
    minijinja::filters::batch(state, value, count, fill_with)
}

fn filter_slice(
    state: &State,
    value: Value,
    count: usize,
    fill_with: Option<Value>,
) -> Result<Value, Error> {
    check_count(state, count, &fill_with, "a slice")?;
    minijinja::filters::slice(state, value, count, fill_with)
}

/// Registers the guards, and the checked versions of the filters sized by their arguments.
pub(super) fn install(env: &mut Environment<'static>) {
    env.add_function("__cinder_add", guard_add);
    env.add_function("__cinder_mul", guard_mul);
    env.add_function("__cinder_concat", guard_concat);
    env.add_function("__cinder_value", guard_value);
    env.add_function("__cinder_emit", guard_emit);
    env.add_function("__cinder_each", guard_each);
    env.add_function("__cinder_charge", guard_charge);
    env.add_filter("__cinder_checked", guard_checked);
    env.add_filter("join", filter_join);
    env.add_filter("replace", filter_replace);
    env.add_filter("indent", filter_indent);
    env.add_filter("format", filter_format);
    env.add_filter("batch", filter_batch);
    env.add_filter("slice", filter_slice);
}

// ---------------------------------------------------------------------------------------------
// The rewrite.

/// Byte range of a span.
fn range(s: minijinja::machinery::Span) -> (usize, usize) {
    (s.start_offset as usize, s.end_offset as usize)
}

struct Rewriter<'s> {
    src: &'s str,
    /// (position, order at that position, text)
    inserts: Vec<(usize, (u8, i64, i64), String)>,
    /// (position, length, replacement)
    replaces: Vec<(usize, usize, &'static str)>,
    error: Option<String>,
    depth: usize,
}

/// Template text (after whitespace control) anywhere in `body`.
fn raw_bytes(body: &[ast::Stmt<'_>]) -> usize {
    body.iter()
        .map(stmt_raw_bytes)
        .fold(0, usize::saturating_add)
}

#[allow(unreachable_patterns)]
fn stmt_raw_bytes(s: &ast::Stmt<'_>) -> usize {
    use ast::Stmt;
    match s {
        Stmt::Template(t) => raw_bytes(&t.children),
        Stmt::EmitRaw(r) => r.raw.len(),
        Stmt::ForLoop(f) => raw_bytes(&f.body).saturating_add(raw_bytes(&f.else_body)),
        Stmt::IfCond(c) => raw_bytes(&c.true_body).saturating_add(raw_bytes(&c.false_body)),
        Stmt::WithBlock(w) => raw_bytes(&w.body),
        Stmt::SetBlock(b) => raw_bytes(&b.body),
        Stmt::AutoEscape(a) => raw_bytes(&a.body),
        Stmt::FilterBlock(f) => raw_bytes(&f.body),
        Stmt::Macro(m) => raw_bytes(&m.body),
        _ => 0,
    }
}

impl<'s> Rewriter<'s> {
    fn fail(&mut self, msg: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(msg.into());
        }
    }

    fn check_name(&mut self, name: &str) {
        if name.starts_with(PREFIX) {
            self.fail(format!("the name {name} is reserved"));
        }
    }

    /// Grows `(start, end)` to take in the parentheses that a node's span leaves out, so that
    /// the range is one whole expression.
    fn balance(&self, (mut start, mut end): (usize, usize)) -> (usize, usize) {
        let b = self.src.as_bytes();
        let (mut open, mut unopened) = (0usize, 0usize);
        let mut i = start;
        while i < end.min(b.len()) {
            match b[i] {
                q @ (b'\'' | b'"') => {
                    i += 1;
                    while i < b.len() && b[i] != q {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'(' => open += 1,
                b')' if open > 0 => open -= 1,
                b')' => unopened += 1,
                _ => {}
            }
            i += 1;
        }
        while unopened > 0 && start > 0 {
            match b[start - 1] {
                b'(' => unopened -= 1,
                c if c.is_ascii_whitespace() => {}
                _ => break,
            }
            start -= 1;
        }
        while open > 0 && end < b.len() {
            match b[end] {
                b')' => open -= 1,
                c if c.is_ascii_whitespace() => {}
                _ => break,
            }
            end += 1;
        }
        (start, end)
    }

    /// The byte range of the whole expression `e` in the source (minijinja's spans of
    /// comparisons, filters, tests and `if` expressions start elsewhere).
    fn extent(&self, e: &ast::Expr<'_>) -> (usize, usize) {
        use ast::{BinOpKind as B, Expr};
        let (start, end) = match e {
            Expr::Var(n) => range(n.span()),
            Expr::Const(n) => range(n.span()),
            Expr::List(n) => range(n.span()),
            Expr::Map(n) => range(n.span()),
            Expr::Slice(n) => (
                range(n.span()).0.min(self.extent(&n.expr).0),
                range(n.span()).1,
            ),
            Expr::GetAttr(n) => (
                range(n.span()).0.min(self.extent(&n.expr).0),
                range(n.span()).1,
            ),
            Expr::GetItem(n) => (
                range(n.span()).0.min(self.extent(&n.expr).0),
                range(n.span()).1,
            ),
            Expr::Call(n) => (
                range(n.span()).0.min(self.extent(&n.expr).0),
                range(n.span()).1,
            ),
            Expr::UnaryOp(n) => match &n.expr {
                // `a not in b` is parsed as `not (a in b)`, both spanned from before `a`.
                Expr::BinOp(b) if matches!(b.op, B::In) && b.span() == n.span() => {
                    self.extent(&n.expr)
                }
                _ => range(n.span()),
            },
            Expr::BinOp(n) => match n.op {
                B::Eq | B::Ne | B::Lt | B::Lte | B::Gt | B::Gte | B::In => {
                    (self.extent(&n.left).0, range(n.span()).1)
                }
                _ => range(n.span()),
            },
            Expr::Compare(n) => (self.extent(&n.expr).0, range(n.span()).1),
            Expr::IfExpr(n) => (self.extent(&n.true_expr).0, range(n.span()).1),
            Expr::Filter(n) => match &n.expr {
                Some(inner) => (self.extent(inner).0, range(n.span()).1),
                None => range(n.span()),
            },
            Expr::Test(n) => (self.extent(&n.expr).0, range(n.span()).1),
        };
        self.balance((start, end.max(start)))
    }

    /// Wraps expression `e` (whose children are already walked) as `name(e<suffix>)`.
    fn wrap(&mut self, e: &ast::Expr<'_>, name: &str, suffix: &str) {
        let (start, end) = self.extent(e);
        let d = self.depth as i64;
        self.inserts
            .push((start, (1, -(end as i64), d), format!("{name}(")));
        self.inserts
            .push((end, (0, -(start as i64), -d), format!("{suffix})")));
    }

    fn stmts(&mut self, body: &[ast::Stmt<'_>]) {
        for s in body {
            self.stmt(s);
        }
    }

    /// Checks the names in an assignment target, which stays as it is.
    fn target(&mut self, e: &ast::Expr<'_>) {
        match e {
            ast::Expr::Var(v) => self.check_name(v.id),
            ast::Expr::List(l) => l.items.iter().for_each(|i| self.target(i)),
            ast::Expr::GetAttr(g) => self.target(&g.expr),
            _ => self.expr(e),
        }
    }

    /// One level deeper for `stmt` or `expr` (failing past `MAX_DEPTH`); false, with the level
    /// already left, once an error is recorded, so the caller returns at once.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.fail("the template nests too deeply");
        }
        if self.error.is_some() {
            self.depth -= 1;
            return false;
        }
        true
    }

    #[allow(unreachable_patterns)]
    fn stmt(&mut self, s: &ast::Stmt<'_>) {
        use ast::Stmt;
        if !self.enter() {
            return;
        }
        match s {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => {
                self.expr(&e.expr);
                self.wrap(&e.expr, "__cinder_emit", "");
            }
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                if f.recursive {
                    self.fail("recursive loops are not supported in chat templates");
                }
                self.target(&f.target);
                self.expr(&f.iter);
                let text = raw_bytes(&f.body).saturating_add(raw_bytes(&f.else_body));
                self.wrap(&f.iter, "__cinder_each", &format!(", {text}"));
                if let Some(cond) = &f.filter_expr {
                    self.expr(cond);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr);
                self.stmts(&c.true_body);
                self.stmts(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                for (t, e) in &w.assignments {
                    self.target(t);
                    self.expr(e);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(s) => {
                self.target(&s.target);
                self.expr(&s.expr);
            }
            Stmt::SetBlock(b) => {
                self.target(&b.target);
                if let Some(f) = &b.filter {
                    self.filter_chain(f);
                }
                let end = self.extent(&b.target).1;
                self.inserts
                    .push((end, (0, i64::MIN, 0), " | __cinder_checked".to_string()));
                self.stmts(&b.body);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.filter_chain(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Macro(m) => {
                self.check_name(m.name);
                for a in &m.args {
                    self.target(a);
                }
                for d in &m.defaults {
                    self.expr(d);
                }
                self.macro_charge(m);
                self.stmts(&m.body);
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr);
                self.args(&d.call.args);
            }
            Stmt::CallBlock(_) => self.fail("call blocks are not supported in chat templates"),
            _ => self.fail(
                "template inheritance, blocks and imports are not supported in chat templates",
            ),
        }
        self.depth -= 1;
    }

    /// Inserts `{{ __cinder_charge(n) }}` right after a macro's opening tag.
    fn macro_charge(&mut self, m: &ast::Spanned<ast::Macro<'_>>) {
        let from = m
            .args
            .iter()
            .chain(&m.defaults)
            .map(|e| self.extent(e).1)
            .max()
            .unwrap_or(range(m.span()).0);
        let Some(close) = self.src[from..].find("%}").map(|i| from + i) else {
            return self.fail("cannot find the end of a macro tag");
        };
        if self.src[from..close].contains(['\'', '"']) {
            return self.fail("cannot find the end of a macro tag");
        }
        let strip = self.src[..close].ends_with('-');
        let text = raw_bytes(&m.body);
        let tag = if strip {
            format!("{{{{ __cinder_charge({text}) -}}}}")
        } else {
            format!("{{{{ __cinder_charge({text}) }}}}")
        };
        self.inserts.push((close + 2, (2, 0, 0), tag));
    }

    fn args(&mut self, args: &[ast::CallArg<'_>]) {
        for a in args {
            match a {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    /// The filters of a `{% filter %}` or `{% set %}` block: applied to the block's text, they
    /// stay as they are (the text is charged, and a set block's result is checked).
    fn filter_chain(&mut self, mut e: &ast::Expr<'_>) {
        while let ast::Expr::Filter(f) = e {
            self.check_name(f.name);
            self.args(&f.args);
            match &f.expr {
                Some(inner) => e = inner,
                None => return,
            }
        }
        self.fail("unexpected block filter");
    }

    fn expr(&mut self, e: &ast::Expr<'_>) {
        use ast::{BinOpKind as B, Expr};
        if !self.enter() {
            return;
        }
        match e {
            Expr::Var(v) => self.check_name(v.id),
            Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
                let (name, op) = match b.op {
                    B::Add => ("__cinder_add", b'+'),
                    B::Mul => ("__cinder_mul", b'*'),
                    B::Concat => ("__cinder_concat", b'~'),
                    _ => {
                        self.depth -= 1;
                        return;
                    }
                };
                // The operator is the one character between the operands that is neither
                // whitespace nor a parenthesis.
                let (from, to) = (self.extent(&b.left).1, self.extent(&b.right).0);
                let between = self.src.as_bytes().get(from..to).unwrap_or_default();
                let mut ops = between
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.is_ascii_whitespace() && !matches!(c, b'(' | b')'));
                match (ops.next(), ops.next()) {
                    (Some((i, &c)), None) if c == op => {
                        self.replaces.push((from + i, 1, ","));
                        self.wrap(e, name, "");
                    }
                    _ => self.fail("cannot find an operator in the template"),
                }
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(f) = &i.false_expr {
                    self.expr(f);
                }
            }
            Expr::Filter(f) => {
                self.check_name(f.name);
                if let Some(inner) = &f.expr {
                    self.expr(inner);
                }
                self.args(&f.args);
                if f.expr.is_some() {
                    self.wrap(e, "__cinder_value", "");
                }
            }
            Expr::Test(t) => {
                self.check_name(t.name);
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => self.expr(&g.expr),
            Expr::GetItem(g) => {
                self.expr(&g.expr);
                self.expr(&g.subscript_expr);
            }
            Expr::Call(c) => {
                self.expr(&c.expr);
                self.args(&c.args);
                self.wrap(e, "__cinder_value", "");
            }
            Expr::List(l) => {
                for i in &l.items {
                    self.expr(i);
                }
                self.wrap(e, "__cinder_value", "");
            }
            Expr::Map(m) => {
                for (k, v) in m.keys.iter().zip(&m.values) {
                    self.expr(k);
                    self.expr(v);
                }
                self.wrap(e, "__cinder_value", "");
            }
        }
        self.depth -= 1;
    }

    fn apply(mut self) -> String {
        self.inserts.sort_by_key(|(pos, order, _)| (*pos, *order));
        self.replaces.sort_by_key(|(pos, _, _)| *pos);
        let mut out = String::with_capacity(self.src.len() * 2);
        let (mut ins, mut rep) = (
            self.inserts.iter().peekable(),
            self.replaces.iter().peekable(),
        );
        let mut pos = 0;
        while pos <= self.src.len() {
            while let Some((_, _, text)) = ins.next_if(|(p, _, _)| *p == pos) {
                out.push_str(text);
            }
            if pos == self.src.len() {
                break;
            }
            if let Some((_, len, text)) = rep.next_if(|(p, _, _)| *p == pos) {
                out.push_str(text);
                pos += len;
                continue;
            }
            let ch = self.src[pos..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&self.src[pos..pos + ch]);
            pos += ch;
        }
        out
    }
}

/// Checks a rewritten template: every operation that makes a value is guarded.
struct Verifier {
    error: Option<String>,
}

fn call_name<'a>(e: &'a ast::Expr<'_>) -> Option<&'a str> {
    match e {
        ast::Expr::Call(c) => match &c.expr {
            ast::Expr::Var(v) => Some(v.id),
            _ => None,
        },
        _ => None,
    }
}

impl Verifier {
    fn fail(&mut self, what: &str) {
        if self.error.is_none() {
            self.error = Some(format!("the guarded template has {what}"));
        }
    }

    fn stmts(&mut self, body: &[ast::Stmt<'_>]) {
        body.iter().for_each(|s| self.stmt(s));
    }

    #[allow(unreachable_patterns)]
    fn stmt(&mut self, s: &ast::Stmt<'_>) {
        use ast::Stmt;
        match s {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => {
                if !matches!(
                    call_name(&e.expr),
                    Some("__cinder_emit" | "__cinder_charge")
                ) {
                    self.fail("an unguarded {{ }}");
                }
                self.expr(&e.expr, false);
            }
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                let charged = match &f.iter {
                    ast::Expr::Call(c) => {
                        call_name(&f.iter) == Some("__cinder_each")
                            && c.args.len() == 2
                            && matches!(&c.args[1], ast::CallArg::Pos(ast::Expr::Const(_)))
                    }
                    _ => false,
                };
                if !charged || f.recursive {
                    self.fail("an unguarded loop");
                }
                self.expr(&f.iter, false);
                if let Some(cond) = &f.filter_expr {
                    self.expr(cond, false);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr, false);
                self.stmts(&c.true_body);
                self.stmts(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                for (_, e) in &w.assignments {
                    self.expr(e, false);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(s) => self.expr(&s.expr, false),
            Stmt::SetBlock(b) => {
                let mut f = b.filter.as_ref();
                let mut innermost = None;
                while let Some(ast::Expr::Filter(x)) = f {
                    innermost = Some(x.name);
                    self.args(&x.args);
                    f = x.expr.as_ref();
                }
                if innermost != Some("__cinder_checked") {
                    self.fail("an unchecked set block");
                }
                self.stmts(&b.body);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, false);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                let mut chain = Some(&f.filter);
                while let Some(ast::Expr::Filter(x)) = chain {
                    self.args(&x.args);
                    chain = x.expr.as_ref();
                }
                if chain.is_some() {
                    self.fail("an unexpected block filter");
                }
                self.stmts(&f.body);
            }
            Stmt::Macro(m) => {
                let charged = matches!(m.body.first(), Some(Stmt::EmitExpr(e))
                    if call_name(&e.expr) == Some("__cinder_charge"));
                if !charged {
                    self.fail("an uncharged macro");
                }
                for d in &m.defaults {
                    self.expr(d, false);
                }
                self.stmts(&m.body);
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr, false);
                self.args(&d.call.args);
            }
            _ => self.fail("an unsupported statement"),
        }
    }

    fn args(&mut self, args: &[ast::CallArg<'_>]) {
        for a in args {
            match a {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => self.expr(e, false),
            }
        }
    }

    /// `guarded`: `e` is the argument of `__cinder_value`.
    fn expr(&mut self, e: &ast::Expr<'_>, guarded: bool) {
        use ast::{BinOpKind as B, Expr};
        match e {
            Expr::Var(_) | Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr, false);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part, false);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr, false),
            Expr::BinOp(b) => {
                if matches!(b.op, B::Add | B::Mul | B::Concat) {
                    self.fail("an unguarded operator");
                }
                self.expr(&b.left, false);
                self.expr(&b.right, false);
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, false);
                c.ops.iter().for_each(|op| self.expr(&op.expr, false));
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, false);
                self.expr(&i.true_expr, false);
                if let Some(f) = &i.false_expr {
                    self.expr(f, false);
                }
            }
            Expr::Filter(f) => {
                if f.expr.is_some() && !guarded {
                    self.fail("an unguarded filter");
                }
                if let Some(inner) = &f.expr {
                    self.expr(inner, false);
                }
                self.args(&f.args);
            }
            Expr::Test(t) => {
                self.expr(&t.expr, false);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => self.expr(&g.expr, false),
            Expr::GetItem(g) => {
                self.expr(&g.expr, false);
                self.expr(&g.subscript_expr, false);
            }
            Expr::Call(c) => {
                let name = call_name(e);
                let ours = name.is_some_and(|n| n.starts_with(PREFIX));
                if !ours && !guarded {
                    self.fail("an unguarded call");
                }
                self.expr(&c.expr, false);
                for (i, a) in c.args.iter().enumerate() {
                    match a {
                        ast::CallArg::Pos(x) => {
                            self.expr(x, i == 0 && name == Some("__cinder_value"))
                        }
                        ast::CallArg::Kwarg(_, x)
                        | ast::CallArg::PosSplat(x)
                        | ast::CallArg::KwargSplat(x) => self.expr(x, false),
                    }
                }
            }
            Expr::List(l) => {
                if !guarded {
                    self.fail("an unguarded list");
                }
                l.items.iter().for_each(|i| self.expr(i, false));
            }
            Expr::Map(m) => {
                if !guarded {
                    self.fail("an unguarded map");
                }
                for (k, v) in m.keys.iter().zip(&m.values) {
                    self.expr(k, false);
                    self.expr(v, false);
                }
            }
        }
    }
}

// `SyntaxConfig` is a unit struct unless minijinja's `custom_syntax` feature is on.
#[allow(clippy::default_constructed_unit_structs)]
fn parse_template(source: &str) -> Result<ast::Stmt<'_>, Error> {
    parse(
        source,
        "chat",
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
}

/// The template `source` with every operation that makes a value guarded (see the module
/// doc), or why it cannot be.
pub(super) fn rewrite(source: &str) -> Result<String, Error> {
    let ast = parse_template(source)?;
    let mut r = Rewriter {
        src: source,
        inserts: Vec::new(),
        replaces: Vec::new(),
        error: None,
        depth: 0,
    };
    r.stmt(&ast);
    if let Some(e) = r.error.take() {
        return Err(invalid(e));
    }
    let guarded = r.apply();
    let check = parse_template(&guarded)
        .map_err(|e| invalid(format!("the guarded template does not parse ({e})")))?;
    let mut v = Verifier { error: None };
    v.stmt(&check);
    drop(check);
    match v.error {
        Some(e) => Err(invalid(e)),
        None => Ok(guarded),
    }
}
