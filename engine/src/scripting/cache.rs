//! Compiled scripts, cached per process and keyed by kind, tenant, script id and version: a
//! saved script is compiled once (on save, and once more per process on first use), never per
//! run. A new version is a new key, so an edit can never run a stale AST.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rhai::AST;

use super::sandbox::{self, ScriptError};

/// Bounds memory: past this many entries the cache starts again (old versions are never used).
const MAX_ENTRIES: usize = 10_000;

static COMPILES: AtomicU64 = AtomicU64::new(0);

fn cache() -> &'static Mutex<HashMap<String, Arc<AST>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<AST>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

pub fn key(kind: &str, tenant_id: &str, id: &str, version: i64) -> String {
    format!("{kind}:{tenant_id}:{id}:{version}")
}

/// The compiled script for `key`, compiling `source` only if this process has not yet.
pub fn get_or_compile(key: &str, source: &str, vars: &[&str]) -> Result<Arc<AST>, ScriptError> {
    if let Some(ast) = cache().lock().ok().and_then(|c| c.get(key).cloned()) {
        return Ok(ast);
    }
    COMPILES.fetch_add(1, Ordering::Relaxed);
    let ast = Arc::new(sandbox::compile(source, vars)?);
    if let Ok(mut c) = cache().lock() {
        if c.len() >= MAX_ENTRIES {
            c.clear();
        }
        c.insert(key.to_string(), ast.clone());
    }
    Ok(ast)
}

/// How many compilations this process has made (tests check scripts are not recompiled).
pub fn compile_count() -> u64 {
    COMPILES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lookup_does_not_recompile() {
        let k = key("test", "t1", "s1", 1);
        get_or_compile(&k, "1 + 1", &[]).unwrap();
        let before = compile_count();
        get_or_compile(&k, "1 + 1", &[]).unwrap();
        assert_eq!(compile_count(), before);
    }
}
