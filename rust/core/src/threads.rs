//! Worker pools. `num_threads = 0` uses `ILIAS_RERANK_NUM_THREADS` when set, else rayon's
//! global pool (all cores, or `RAYON_NUM_THREADS`). Pools of a given size are built once
//! and kept for the life of the process.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

static POOLS: Mutex<Vec<(usize, Arc<ThreadPool>)>> = Mutex::new(Vec::new());

/// The thread count a call with `requested` threads will use.
pub fn effective_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::env::var("ILIAS_RERANK_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0 && n <= 1024)
        .unwrap_or_else(rayon::current_num_threads)
}

fn pool(threads: usize) -> Option<Arc<ThreadPool>> {
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Some(Arc::clone(p));
    }
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ilias-rerank-{i}"))
        .build()
        .ok()
        .map(Arc::new)?;
    pools.push((threads, Arc::clone(&built)));
    Some(built)
}

/// Run `work` on a pool of `requested` threads (see module docs).
pub fn install<R: Send>(requested: usize, work: impl FnOnce() -> R + Send) -> R {
    let threads = effective_threads(requested);
    if requested == 0 && threads == rayon::current_num_threads() {
        return work();
    }
    match pool(threads) {
        Some(p) => p.install(work),
        None => work(),
    }
}
