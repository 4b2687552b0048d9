//! Re-ranking of a shortlist (up to 6 candidates, optional global scores): never a panic;
//! on success the order is a permutation of the candidates and the scores are finite and
//! strictly decreasing.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;
use input::{config, Bytes, Image};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let cfg = config(&mut b);
    let dim = 1 + (b.u8() % 24) as usize;
    let kind = b.u8() % 4;
    let n = (b.u8() % 48) as usize;
    let query = Image::new(&mut b, n, dim, kind);
    let count = (b.u8() % 7) as usize;
    let cands: Vec<Image> = (0..count)
        .map(|_| {
            let n = (b.u8() % 48) as usize;
            Image::new(&mut b, n, dim, kind)
        })
        .collect();
    let global: Option<Vec<f32>> = match b.u8() % 3 {
        0 => None,
        1 => Some(b.f32s(count)),
        _ => Some(b.f32s(count + 1)), // wrong length on purpose
    };
    let views: Vec<_> = cands.iter().map(Image::view).collect();
    if let Ok(out) = ilias_rerank_core::rerank(&query.view(), &views, global.as_deref(), &cfg) {
        let mut seen = out.order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..count).collect::<Vec<_>>());
        assert!(out.scores.iter().all(|s| s.is_finite()));
        assert!(out.scores.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(out.candidates.len(), count);
        assert!(out.refined.len() <= cfg.cascade_candidates.min(count));
        assert!(out.refined.iter().all(|&j| j < count));
    }
});
