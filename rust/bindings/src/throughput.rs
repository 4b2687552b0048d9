//! `kernel_throughput`: the nearest-neighbour kernel alone on seeded random descriptors,
//! for the peer benchmark's roofline (our multiply-adds/s next to numpy's and torch's GEMM
//! measured in the same process).

use std::time::Instant;

use ilias_rerank_core::kernels::{nearest_neighbours, CandidateRows, Isa, NnScratch, PackedQuery};
use ilias_rerank_core::verify::PairRng;
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::errors::raise;

/// Multiply-adds per second of `repeats` N x M x D nearest-neighbour searches, run on
/// `threads` threads (0 = all), float32 (`uint8=False`) or uint8.
#[pyfunction]
#[pyo3(signature = (n, m, dim, uint8=false, repeats=64, threads=0))]
pub fn kernel_throughput(
    py: Python<'_>,
    n: usize,
    m: usize,
    dim: usize,
    uint8: bool,
    repeats: usize,
    threads: usize,
) -> PyResult<f64> {
    // Checked products: n * dim must not wrap around (2**62 * 4 would pass as 0).
    let fits = |rows: usize| {
        rows.checked_mul(dim)
            .is_some_and(|size| (1..=1 << 26).contains(&size))
    };
    let sizes_ok = n >= 1 && m >= 1 && dim >= 1 && fits(n) && fits(m);
    if !sizes_ok || !(1..=100_000).contains(&repeats) || threads > 1024 {
        return Err(raise(
            py,
            "ConfigError",
            format!("kernel_throughput: expected 1 <= n*dim, m*dim <= 2**26, 1 <= repeats <= 100000 and threads <= 1024, got n={n} m={m} dim={dim} repeats={repeats} threads={threads}"),
        ));
    }
    let mut rng = PairRng::for_pair(7, n as u64, m as u64);
    let mut uniform = |k: usize| -> Vec<f32> {
        (0..k)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .collect()
    };
    let (a, b) = (uniform(n * dim), uniform(m * dim));
    let (au8, bu8): (Vec<u8>, Vec<u8>) = (
        a.iter().map(|v| (v * 255.0) as u8).collect(),
        b.iter().map(|v| (v * 255.0) as u8).collect(),
    );
    let isa = Isa::detect();
    let packed = if uint8 {
        PackedQuery::from_u8(&au8, n, dim, isa)
    } else {
        PackedQuery::from_f32(&a, n, dim, isa)
    };
    let seconds = py.detach(|| {
        ilias_rerank_core::threads::install(threads, || {
            let start = Instant::now();
            (0..repeats)
                .into_par_iter()
                .for_each_init(NnScratch::default, |scratch, _| {
                    let rows = if uint8 {
                        CandidateRows::U8(&bu8)
                    } else {
                        CandidateRows::F32(&b)
                    };
                    nearest_neighbours(&packed, rows, m, scratch);
                });
            start.elapsed().as_secs_f64()
        })
    });
    let seconds = seconds.map_err(|e| crate::errors::to_py(py, e))?;
    Ok((n * m * dim * repeats) as f64 / seconds.max(1e-12))
}
