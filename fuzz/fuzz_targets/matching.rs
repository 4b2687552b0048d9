//! Matching + verification of one pair on arbitrary arrays: never a panic; on success the
//! matches index real rows and the inlier mask is one flag per match.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;
use input::{config, Bytes, Image};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let cfg = config(&mut b);
    let dim = 1 + (b.u8() % 40) as usize;
    let kind = b.u8() % 4;
    // Occasionally a different type or dimension on the candidate side.
    let (ckind, cdim) = if b.u8() % 16 == 0 {
        (b.u8() % 4, 1 + (b.u8() % 40) as usize)
    } else {
        (kind, dim)
    };
    let (n, m) = ((b.u8() % 64) as usize, (b.u8() % 64) as usize);
    let q = Image::new(&mut b, n, dim, kind);
    let c = Image::new(&mut b, m, cdim, ckind);
    if let Ok(out) = ilias_rerank_core::verify_pair(&q.view(), &c.view(), &cfg) {
        assert_eq!(out.inlier_mask.len(), out.matches.len());
        for mt in &out.matches {
            assert!((mt.query as usize) < n && (mt.candidate as usize) < m);
        }
        let kept = out.inlier_mask.iter().filter(|&&x| x).count();
        assert!(kept <= out.matches.len());
    }
});
