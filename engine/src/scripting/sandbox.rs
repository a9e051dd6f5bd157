//! The one shared, locked-down Rhai engine every tenant script runs on, and its limits.
//!
//! Scripts see only the standard value functions (strings, arrays, maps, maths) and the context
//! they are given: no `eval`, no `import`/modules, no `print` to the console, no `sleep`, no file
//! or network access. Limits bound operations, call depth, expression depth and the size of
//! strings, arrays and maps; a wall-clock deadline, checked from the progress callback, stops a
//! script that is still within its operation budget but too slow.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, ParseError, Position, Scope};

pub const MAX_OPERATIONS: u64 = 500_000;
pub const MAX_CALL_LEVELS: usize = 32;
pub const MAX_EXPR_DEPTH: usize = 64;
pub const MAX_FN_EXPR_DEPTH: usize = 32;
pub const MAX_STRING_SIZE: usize = 64 * 1024;
pub const MAX_ARRAY_SIZE: usize = 10_000;
pub const MAX_MAP_SIZE: usize = 1_000;
pub const MAX_VARIABLES: usize = 256;
pub const MAX_FUNCTIONS: usize = 64;
/// Wall-clock budget of one evaluation. Rules take microseconds; the budget is short because
/// memory a hostile script can take grows with its time (see `run_blocking`).
pub const DEADLINE: Duration = Duration::from_millis(100);
/// Longest script source accepted on save.
pub const MAX_SOURCE_LEN: usize = 20_000;

thread_local! {
    // Scripts run on blocking threads, one evaluation at a time per thread, so the deadline of
    // the evaluation in progress lives with the thread.
    static DEADLINE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Why a script could not be compiled or did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// `syntax`, `runtime`, `limit` or `timeout`.
    pub kind: &'static str,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(
                f,
                "{} error at line {l}, column {c}: {}",
                self.kind, self.message
            ),
            (Some(l), None) => write!(f, "{} error at line {l}: {}", self.kind, self.message),
            _ => write!(f, "{} error: {}", self.kind, self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ScriptError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    fn with_pos(mut self, pos: Position) -> Self {
        self.line = pos.line();
        self.column = pos.position();
        self
    }

    pub fn from_parse(e: &ParseError) -> Self {
        ScriptError::new("syntax", e.0.to_string()).with_pos(e.1)
    }

    pub fn from_eval(e: &EvalAltResult) -> Self {
        let pos = e.position();
        let err = match e {
            EvalAltResult::ErrorTooManyOperations(_) => ScriptError::new(
                "limit",
                format!("the script exceeded its limit of {MAX_OPERATIONS} operations"),
            ),
            EvalAltResult::ErrorStackOverflow(_) => ScriptError::new(
                "limit",
                format!("the script exceeded its limit of {MAX_CALL_LEVELS} nested function calls"),
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => ScriptError::new(
                "limit",
                format!(
                    "{what} exceeds its limit (strings {MAX_STRING_SIZE} bytes, arrays {MAX_ARRAY_SIZE} items, maps {MAX_MAP_SIZE} entries)"
                ),
            ),
            EvalAltResult::ErrorTooManyVariables(_) => ScriptError::new(
                "limit",
                format!("the script exceeded its limit of {MAX_VARIABLES} variables"),
            ),
            EvalAltResult::ErrorTerminated(_, _) => ScriptError::new(
                "timeout",
                format!(
                    "the script exceeded its time limit of {} ms",
                    DEADLINE.as_millis()
                ),
            ),
            EvalAltResult::ErrorFunctionNotFound(sig, _) => {
                ScriptError::new("runtime", format!("function not found: {sig}"))
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => {
                return ScriptError::from_eval(inner);
            }
            other => ScriptError::new("runtime", other.to_string()),
        };
        err.with_pos(pos)
    }
}

/// The shared engine (built once; `sync` makes it usable from every thread).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(build)
}

fn build() -> Engine {
    let mut e = Engine::new();
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    for symbol in ["eval", "import", "export"] {
        e.disable_symbol(symbol);
    }
    e.set_strict_variables(true);
    e.set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_variables(MAX_VARIABLES)
        .set_max_functions(MAX_FUNCTIONS)
        .set_max_modules(0);
    // A script's output goes nowhere: the engine's console is not the tenant's.
    e.on_print(|_| {});
    e.on_debug(|_, _, _| {});
    // `sleep` would block a worker thread without counting operations; the engine's own
    // functions take precedence over the standard package's.
    e.register_fn("sleep", |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
        Err("sleep is not available in scripts".into())
    });
    e.register_fn(
        "sleep",
        |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> {
            Err("sleep is not available in scripts".into())
        },
    );
    e.on_progress(|ops| {
        // Reading the clock every operation would cost more than the operation.
        if ops % 512 == 0 {
            let late = DEADLINE_AT.with(|d| d.get().is_some_and(|at| Instant::now() > at));
            if late {
                return Some(Dynamic::from("deadline"));
            }
        }
        None
    });
    e
}

/// Compiles a script; `vars` are the names of the context it will be given (strict variables:
/// any other free name is a compile error).
pub fn compile(source: &str, vars: &[&str]) -> Result<AST, ScriptError> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(ScriptError::new(
            "syntax",
            format!("the script is longer than {MAX_SOURCE_LEN} characters"),
        ));
    }
    // Plain variables, not constants: the optimiser would fold constant placeholders into
    // the AST. At run time the context is pushed as constants, so scripts cannot change it.
    let mut scope = Scope::new();
    for v in vars {
        scope.push_dynamic(*v, Dynamic::UNIT);
    }
    let ast = engine()
        .compile_with_scope(&scope, source)
        .map_err(|e| ScriptError::from_parse(&e))?;
    refuse_index_assignment(&ast)?;
    Ok(ast)
}

/// Rhai checks the size of a map or array grown through `x[k] = v` only item by item, so a
/// loop of such assignments could hold memory far beyond the limits. Scripts build maps and
/// arrays with `set`, `+=`, `push`, `mixin` and literals instead, which are checked as a whole.
fn refuse_index_assignment(ast: &AST) -> Result<(), ScriptError> {
    fn has_index(e: &rhai::Expr) -> bool {
        match e {
            rhai::Expr::Index(..) => true,
            rhai::Expr::Dot(x, _, _) => has_index(&x.lhs) || has_index(&x.rhs),
            _ => false,
        }
    }
    let mut found: Option<Position> = None;
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Assignment(x))) = path.last()
            && has_index(&x.1.lhs)
        {
            found = Some(x.1.lhs.position());
            return false;
        }
        true
    });
    match found {
        Some(pos) => Err(ScriptError::new(
            "syntax",
            "assigning through an index (x[k] = v) is not allowed; build maps with m.set(k, v), += #{...} or mixin, arrays with push or +=",
        )
        .with_pos(pos)),
        None => Ok(()),
    }
}

/// Evaluates a compiled script against a context, within the limits. Blocking: call it from
/// `spawn_blocking` (see `run_blocking`), never on an async thread.
pub fn eval(ast: &AST, ctx: Vec<(&str, Dynamic)>) -> Result<Dynamic, ScriptError> {
    eval_within(ast, ctx, DEADLINE)
}

fn eval_within(
    ast: &AST,
    ctx: Vec<(&str, Dynamic)>,
    budget: Duration,
) -> Result<Dynamic, ScriptError> {
    let mut scope = Scope::new();
    for (k, v) in ctx {
        scope.push_constant_dynamic(k, v);
    }
    DEADLINE_AT.with(|d| d.set(Some(Instant::now() + budget)));
    // Rhai checks sizes per operation; a map grown through `m[key] = v` is only checked item by
    // item, so the result is checked as a whole too.
    let out = engine()
        .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
        .and_then(|v| engine().ensure_data_size_within_limits(&v).map(|_| v));
    DEADLINE_AT.with(|d| d.set(None));
    out.map_err(|e| ScriptError::from_eval(&e))
}

/// Runs blocking script work off the async threads, a few at a time. Rhai bounds each string,
/// array and map it checks, but a map grown key by key (`m[k] = v`) is only checked item by
/// item, so one evaluation can hold memory in proportion to its time (measured: ~150 MB in
/// 100 ms of a hostile loop). Bounding concurrent evaluations bounds the total.
pub async fn run_blocking<T, F>(f: F) -> Result<T, ScriptError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(n.max(2))
    });
    let _slot = slots
        .acquire()
        .await
        .map_err(|e| ScriptError::new("runtime", format!("script slots closed: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ScriptError::new("runtime", format!("script worker failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> Result<Dynamic, ScriptError> {
        let ast = compile(src, &["ctx"])?;
        eval(&ast, vec![("ctx", Dynamic::from(1_i64))])
    }

    #[test]
    fn evaluates_with_context() {
        assert_eq!(run("ctx + 41").unwrap().as_int().unwrap(), 42);
    }

    #[test]
    fn endless_loop_hits_a_limit() {
        let e = run("loop { }").unwrap_err();
        assert!(e.kind == "limit" || e.kind == "timeout", "{e}");
        let e = run("let x = 0; while true { x += 1; }").unwrap_err();
        assert!(e.kind == "limit" || e.kind == "timeout", "{e}");
    }

    #[test]
    fn deep_recursion_is_stopped() {
        let e = run("fn f(n) { f(n + 1) } f(0)").unwrap_err();
        assert_eq!(e.kind, "limit", "{e}");
        assert!(e.message.contains("nested function calls"), "{e}");
    }

    #[test]
    fn doubling_string_is_stopped() {
        let e = run(r#"let s = "x"; loop { s += s; }"#).unwrap_err();
        assert_eq!(e.kind, "limit", "{e}");
    }

    #[test]
    fn doubling_array_is_stopped() {
        let e = run("let a = [1]; loop { a += a; }").unwrap_err();
        assert_eq!(e.kind, "limit", "{e}");
    }

    #[test]
    fn huge_single_allocations_are_refused() {
        for src in [
            r#""x".pad(2000000000, "y")"#,
            "[].pad(2000000000, 0)",
            "blob(2000000000)",
            "let m = #{}; for i in 0..5000 { m.set(`k${i}`, i); } 1",
            r#"let s = "x"; s.pad(60000, "y"); let m = #{}; for i in 0..5000 { m.set(`k${i}`, s + i); } 1"#,
            "let m = #{}; for i in 0..5000 { m.mixin(#{x: i}); m += #{}; } let a = []; for i in 0..20000 { a += i; } a",
            "let a = []; for i in range(0, 2000000000) { a.push(i); } a",
        ] {
            let e = run(src).unwrap_err();
            assert!(e.kind == "limit" || e.kind == "timeout", "{src}: {e}");
        }
    }

    #[test]
    fn index_assignment_is_refused_on_save() {
        let e = compile("let m = #{};\nm[\"k\"] = 1; m", &[]).unwrap_err();
        assert_eq!((e.kind, e.line), ("syntax", Some(2)), "{e}");
        assert!(compile("let a = [1]; a[0] += 1; a", &[]).is_err());
        assert!(compile("let m = #{a: #{}}; m.a[\"x\"] = 1; m", &[]).is_err());
        // Reading through an index, property assignment and checked growth stay allowed.
        assert!(
            run("let m = #{a: 1}; m.a = 2; m += #{b: 3}; let a = [m]; a.push(m[\"b\"]); a[1]")
                .is_ok()
        );
    }

    #[test]
    fn unknown_function_is_a_runtime_error() {
        let e = run("no_such_function(1)").unwrap_err();
        assert_eq!(e.kind, "runtime", "{e}");
        assert!(e.message.contains("no_such_function"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn unknown_variable_is_a_compile_error() {
        let e = run("ctx + other").unwrap_err();
        assert_eq!(e.kind, "syntax", "{e}");
        assert_eq!((e.line, e.column), (Some(1), Some(7)));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = compile("let a = 1;\nlet b = (a + ;", &[]).unwrap_err();
        assert_eq!(e.kind, "syntax");
        assert_eq!(e.line, Some(2));
        assert!(e.column.is_some());
    }

    #[test]
    fn eval_import_and_sleep_are_unavailable() {
        assert!(compile(r#"eval("1")"#, &[]).is_err());
        assert!(compile(r#"import "x" as y; 1"#, &[]).is_err());
        let e = run("sleep(10); 1").unwrap_err();
        assert!(e.message.contains("sleep"), "{e}");
    }

    #[test]
    fn deadline_stops_a_script_within_its_operation_budget() {
        let ast = compile("let n = 0; for i in 0..100000 { n += i; } n", &[]).unwrap();
        let e = eval_within(&ast, vec![], Duration::ZERO).unwrap_err();
        assert_eq!(e.kind, "timeout", "{e}");
        // The same script finishes with its normal budget.
        assert!(eval(&ast, vec![]).is_ok());
    }

    #[test]
    fn slow_script_hits_the_deadline() {
        // String building in a loop is slow per operation but within the operation budget:
        // the deadline (not the operation count) has to stop it... or the op limit does.
        let e = run(r#"let n = 0; loop { let s = "abc".pad(60000, "x"); n += 1; }"#).unwrap_err();
        assert!(e.kind == "timeout" || e.kind == "limit", "{e}");
    }
}
