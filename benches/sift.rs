//! SIFT stage by stage at the package's working size (768 px long side, 1,024 features,
//! contrast 0.02, doubled first octave), against the estimated limit of issue 23
//! (≈ 10–20 ms an image on one AVX-512 core: blur ≈ 0.75 GMAC with the doubled octave;
//! extrema, orientation and 1,024 descriptors a few ms each).
//!
//! The image is the procedural scene of the tests drawn at 768 x 576 with grain (± 6 grey
//! levels of noise: a photo has no flat areas), or a raw grey photo
//! given as `ILIAS_RERANK_SIFT_RAW=path,width,height` (bytes, row-major). First a stage
//! table (median of 15 whole extractions, from `extract_sift_profiled`), then criterion
//! timings of the whole extractor on the detected ISA and the portable code, of one image
//! on two threads (`SiftConfig::threads = 2`: each octave's pyramid and extrema scan in two
//! bands of rows, then refinement, orientations and descriptors, all on the pool; wall
//! clock, so it shows only on an otherwise idle machine), of one blur of
//! the doubled octave and of the extrema scan of one octave. OpenCV is not run here:
//! its time on the same image comes from `python benches/extract.py` (same machine).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ilias_rerank_core::isa::Isa;
use ilias_rerank_core::sift::{
    extract_sift_profiled, gaussian_blur_plane, scan_extrema_plane, GrayImage, SiftConfig,
    SiftProfile,
};
use std::time::Duration;

#[path = "../rust/core/tests/sift_data/scene.rs"]
mod scene_data;

fn image() -> (Vec<f32>, usize, usize) {
    if let Ok(spec) = std::env::var("ILIAS_RERANK_SIFT_RAW") {
        let parts: Vec<&str> = spec.split(',').collect();
        let (w, h) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        let bytes = std::fs::read(parts[0]).expect("ILIAS_RERANK_SIFT_RAW: path,width,height");
        assert_eq!(bytes.len(), w * h, "ILIAS_RERANK_SIFT_RAW: size");
        return (bytes.iter().map(|&b| b as f32 / 255.0).collect(), w, h);
    }
    let (w, h) = (768, 576);
    let bytes = scene_data::scene(w, h, 700, 6);
    (bytes.iter().map(|&b| b as f32 / 255.0).collect(), w, h)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn stage_table(pixels: &[f32], w: usize, h: usize, isa: Isa) {
    let image = GrayImage {
        width: w,
        height: h,
        pixels,
    };
    let config = SiftConfig::default();
    let mut runs: Vec<(usize, SiftProfile)> = (0..16)
        .map(|_| {
            let (f, p) = extract_sift_profiled(&image, &config, isa).unwrap();
            (f.keypoints.len(), p)
        })
        .skip(1)
        .collect();
    let kept = runs[0].0;
    let median = |f: &dyn Fn(&SiftProfile) -> Duration| {
        let mut v: Vec<f64> = runs.iter().map(|(_, p)| ms(f(p))).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rows: [(&str, f64, &str); 5] = [
        (
            "pyramid (doubling, blurs, DoG)",
            median(&|p| p.pyramid),
            "≈ 5–10",
        ),
        (
            "extrema (scan, refine, tests)",
            median(&|p| p.extrema),
            "≈ 1–3",
        ),
        ("orientation (capped)", median(&|p| p.orientation), "≈ 1–3"),
        ("descriptors (kept)", median(&|p| p.descriptors), "≈ 2–5"),
        ("total", median(&|p| p.total), "≈ 10–20"),
    ];
    runs.sort_by_key(|(_, p)| p.total);
    let p = runs[0].1;
    println!(
        "\nSIFT stages, {w} x {h}, {} ISA, {kept} keypoints kept from {} oriented of {} candidates ({} raw extrema); median of 15 runs, ms (machine load shows here: read beside a peer run at the same time)",
        isa.name(),
        p.oriented,
        p.candidates,
        p.extrema_found
    );
    println!("{:<34} {:>9} {:>16}", "stage", "ms", "estimated limit");
    for (name, t, limit) in rows {
        println!("{name:<34} {t:>9.2} {limit:>16}");
    }
}

fn sift(c: &mut Criterion) {
    let (pixels, w, h) = image();
    stage_table(&pixels, w, h, Isa::detect());
    let image = GrayImage {
        width: w,
        height: h,
        pixels: &pixels,
    };
    let config = SiftConfig::default();
    let mut group = c.benchmark_group("sift");
    group.sample_size(10);
    for isa in [Isa::detect(), Isa::portable()] {
        group.bench_with_input(BenchmarkId::new("extract", isa.name()), &isa, |b, &isa| {
            b.iter(|| extract_sift_profiled(&image, &config, isa).unwrap())
        });
    }
    let two = SiftConfig {
        threads: 2,
        ..config
    };
    group.bench_function(
        BenchmarkId::new("extract_2_threads", Isa::detect().name()),
        |b| b.iter(|| extract_sift_profiled(&image, &two, Isa::detect()).unwrap()),
    );
    // One level blur of the doubled octave (σ = 1.23, 11 taps), and the extrema scan of
    // one doubled octave's five DoG layers.
    let (w2, h2) = (2 * w, 2 * h);
    let plane: Vec<f32> = (0..w2 * h2)
        .map(|i| pixels[(i / w2 / 2) * w + (i % w2) / 2] * 255.0)
        .collect();
    let isa = Isa::detect();
    group.bench_function(BenchmarkId::new("blur_doubled_octave", isa.name()), |b| {
        b.iter(|| gaussian_blur_plane(isa, &plane, w2, h2, 1.226))
    });
    let levels: Vec<Vec<f32>> = [1.0f32, 1.26, 1.59, 2.0, 2.52, 3.17]
        .iter()
        .map(|&s| gaussian_blur_plane(isa, &plane, w2, h2, s))
        .collect();
    let dog: Vec<Vec<f32>> = levels
        .windows(2)
        .map(|p| p[1].iter().zip(&p[0]).map(|(a, b)| a - b).collect())
        .collect();
    let refs: Vec<&[f32]> = dog.iter().map(|d| d.as_slice()).collect();
    group.bench_function(BenchmarkId::new("scan_doubled_octave", isa.name()), |b| {
        b.iter(|| scan_extrema_plane(isa, &refs, w2, h2, 0.0))
    });
    group.finish();
}

criterion_group!(benches, sift);
criterion_main!(benches);
