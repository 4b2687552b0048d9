//! Worker pools. `num_threads = 0` uses `ILIAS_RERANK_NUM_THREADS` when set, else
//! `RAYON_NUM_THREADS`, else all cores. Pools are built once per size *and per process*:
//! after `fork()` (a PyTorch DataLoader worker, a multiprocessing child) the parent's pool
//! threads do not exist in the child, so a child builds its own pools and never touches
//! the inherited ones (they are leaked, not dropped: dropping would wait on threads that
//! are not there). rayon's global pool is never used, for the same reason.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

struct Pool {
    process: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOLS: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

fn env_threads(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0 && n <= 1024)
}

/// The thread count a call with `requested` threads will use.
pub fn effective_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    env_threads("ILIAS_RERANK_NUM_THREADS")
        .or_else(|| env_threads("RAYON_NUM_THREADS"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool(threads: usize) -> Option<Arc<ThreadPool>> {
    let process = std::process::id();
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if pools.iter().any(|p| p.process != process) {
        // Inherited through fork(): forget them without running their destructors.
        for stale in pools.extract_if(.., |p| p.process != process) {
            std::mem::forget(stale);
        }
    }
    if let Some(p) = pools.iter().find(|p| p.threads == threads) {
        return Some(Arc::clone(&p.pool));
    }
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ilias-rerank-{i}"))
        .build()
        .ok()
        .map(Arc::new)?;
    pools.push(Pool {
        process,
        threads,
        pool: Arc::clone(&built),
    });
    Some(built)
}

/// Run `work` on a pool of `requested` threads (see module docs). If no pool can be
/// built, the work runs on the calling thread (rayon's sequential fallback).
pub fn install<R: Send>(requested: usize, work: impl FnOnce() -> R + Send) -> R {
    let threads = effective_threads(requested);
    match pool(threads) {
        Some(p) => p.install(work),
        None => work(),
    }
}
