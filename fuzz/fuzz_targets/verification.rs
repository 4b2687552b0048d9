//! Verification of arbitrary correspondences (points, frames, image size, settings):
//! never a panic; on success one inlier flag per correspondence and a finite transform
//! whenever a model was found.
#![no_main]

use ilias_rerank_core::Frames;
use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;
use input::{config, Bytes};

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let cfg = config(&mut b);
    let k = (b.u8() as usize) % 120;
    let extra = usize::from(b.u8() % 32 == 0); // a length mismatch, sometimes
    let (qp, cp) = (b.f32s(2 * k), b.f32s(2 * k + extra));
    let frame_kind = b.u8() % 3;
    let (qf, cf) = match frame_kind {
        1 => (b.f32s(2 * k), b.f32s(2 * k)),
        2 => (b.f32s(6 * k), b.f32s(6 * k)),
        _ => (Vec::new(), Vec::new()),
    };
    let frames = match frame_kind {
        1 => Some((Frames::ScaleOrientation(&qf), Frames::ScaleOrientation(&cf))),
        2 => Some((Frames::Affine(&qf), Frames::Affine(&cf))),
        _ => None,
    };
    let size = if b.u8() % 2 == 0 {
        None
    } else {
        Some((b.u32() % 70_000, b.u32() % 70_000))
    };
    if let Ok((v, mask)) = ilias_rerank_core::verify_correspondences(&qp, &cp, frames, size, &cfg) {
        assert_eq!(mask.len(), k);
        assert!(v.inliers as usize <= k);
        if v.model.is_some() {
            assert!(v.transform.0.iter().all(|x| x.is_finite()));
        }
    }
});
