//! The whole extractor: scale space (doubled first octave, incremental blurs, halving),
//! DoG extrema and their refinement octave by octave, then the cap, and orientations and
//! descriptors only for the keypoints that survive it.
//!
//! The cap counts keypoints as OpenCV's `retainBest` does: every orientation of an
//! extremum is one keypoint, and keypoints tied with the last kept response are kept
//! before the final cut. Extrema are taken strongest first and oriented until the cap is
//! reached (so the orientation of the others, most of them, is never computed); the
//! survivors are then ordered by response (ties by y, then x) and cut to `max_features`,
//! which is exactly `strongest_first` over OpenCV's output in the Python backend.

use super::blur::{
    downsample2, gaussian_blur, gaussian_blur_rows, gaussian_half_kernel, upsample2_rows,
    BlurScratch,
};
use super::descriptor::{raw_descriptor, root_sift, DescScratch, DIM};
use super::extrema::{refine, scan_extrema, Plane, Refined, Scanner};
use super::orientation::{orientations, OriScratch};
use super::{GrayImage, SiftConfig, SiftFeatures, SiftKeypoint};
use crate::error::Result;
use crate::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Where the time of one [`extract_sift_profiled`](super::extract_sift_profiled) call went
/// (wall clock of the calling thread), and how many extrema each stage saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SiftProfile {
    /// Input scaling, doubling, Gaussian levels and DoG of every octave.
    pub pyramid: Duration,
    /// Extrema scan, refinement, contrast and edge tests.
    pub extrema: Duration,
    /// Ranking and orientations of the extrema that reach the cap.
    pub orientation: Duration,
    /// Descriptors (and RootSIFT bytes) of the kept keypoints.
    pub descriptors: Duration,
    /// The whole call.
    pub total: Duration,
    /// 3x3x3 extrema the scan found (before refinement).
    pub extrema_found: usize,
    /// Extrema that passed refinement, contrast and edge tests (all octaves).
    pub candidates: usize,
    /// Candidates whose orientations were computed before the cap was full.
    pub oriented: usize,
}

/// Rows a level advances at a time in the banded pyramid.
const BAND_ROWS: usize = 16;

/// The assumed blur of the input image (OpenCV's `SIFT_INIT_SIGMA`).
const INIT_SIGMA: f32 = 0.5;

/// A refined extremum ready for orientation: its octave and where it lies.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    octave: usize,
    refined: Refined,
    /// Position and size in the given image's pixels (OpenCV's `KeyPoint`).
    x: f32,
    y: f32,
    size: f32,
    packed_octave: i32,
}

/// `(width, height)` of each octave and how many there are.
fn octave_count(width: usize, height: usize, upsample: bool) -> usize {
    let base = if upsample {
        2 * width.min(height)
    } else {
        width.min(height)
    };
    let first = if upsample { -1i64 } else { 0 };
    let n = ((base as f64).log2() - 2.0).round() as i64 - first;
    n.max(1) as usize
}

/// The blur between consecutive levels of an octave (OpenCV's `sig[i]`), as half kernels.
fn level_kernels(sigma: f32, layers: usize) -> Vec<Vec<f32>> {
    let k = 2f64.powf(1.0 / layers as f64);
    (1..layers + 3)
        .map(|i| {
            let prev = k.powi(i as i32 - 1) * sigma as f64;
            let total = prev * k;
            gaussian_half_kernel((total * total - prev * prev).sqrt() as f32)
        })
        .collect()
}

/// `dst = G_σ * src` of a plane: the blur of the extractor, public for tests and benches.
pub fn gaussian_blur_plane(
    isa: Isa,
    src: &[f32],
    width: usize,
    height: usize,
    sigma: f32,
) -> Vec<f32> {
    let mut dst = vec![0f32; src.len()];
    let k = gaussian_half_kernel(sigma);
    gaussian_blur(
        isa,
        src,
        &mut dst,
        width,
        height,
        &k,
        &mut BlurScratch::default(),
        None,
    );
    dst
}

/// The extrema scan of the extractor over DoG layers given as planes: public for tests.
pub fn scan_extrema_plane(
    isa: Isa,
    dog: &[&[f32]],
    width: usize,
    height: usize,
    thr: f32,
) -> Vec<(u32, u32, u32)> {
    let planes: Vec<Plane> = dog
        .iter()
        .map(|d| Plane {
            data: d,
            width,
            height,
        })
        .collect();
    let mut out = vec![];
    scan_extrema(isa, &planes, thr, &mut out);
    out
}

/// Planes a thread keeps between images, so that the next image of a batch finds its
/// memory mapped and warm (no page faults); at most [`POOL_BYTES`] stay.
struct Pool(Vec<Vec<f32>>);

const POOL_BYTES: usize = 256 << 20;

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool(Vec::new())) };
}

impl Pool {
    /// A plane of at least `n` values (contents unspecified; callers use `[..n]`): the
    /// shortest kept one that long, else the longest grown to `n`. Planes never shrink,
    /// so that a batch of images of one size stops allocating and zeroing after the first.
    fn take(&mut self, n: usize) -> Vec<f32> {
        let best = (0..self.0.len())
            .filter(|&i| self.0[i].len() >= n)
            .min_by_key(|&i| self.0[i].len())
            .or_else(|| (0..self.0.len()).max_by_key(|&i| self.0[i].len()));
        let mut v = match best {
            Some(i) => self.0.swap_remove(i),
            None => Vec::new(),
        };
        if v.len() < n {
            v.resize(n, 0.0);
        }
        v
    }

    fn give(&mut self, v: Vec<f32>) {
        let held: usize = self.0.iter().map(|p| p.capacity() * 4).sum();
        if held + v.capacity() * 4 <= POOL_BYTES {
            self.0.push(v);
        }
    }
}

/// `f` of every item, in order, with one `scratch` per worker: on the calling thread when
/// `threads <= 1`, else on the crate's pool of `threads` threads in contiguous chunks
/// (neighbouring items share cache lines). The result is the same either way.
fn par_map<T: Sync, S, R: Send>(
    threads: usize,
    items: &[T],
    scratch: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &T) -> R + Sync + Send,
) -> Result<Vec<R>> {
    if threads <= 1 || items.len() < 2 {
        let mut s = scratch();
        return Ok(items.iter().map(|t| f(&mut s, t)).collect());
    }
    // A few chunks a thread, so that a slow chunk does not hold up the others.
    let chunk = items.len().div_ceil(4 * threads).max(1);
    let parts: Vec<Vec<R>> = crate::threads::install(threads, || {
        items
            .par_chunks(chunk)
            .map_init(&scratch, |s, part| part.iter().map(|t| f(s, t)).collect())
            .collect()
    })?;
    Ok(parts.into_iter().flatten().collect())
}

struct Octave {
    width: usize,
    height: usize,
    gauss: Vec<Vec<f32>>,
}

pub(crate) fn extract(
    image: &GrayImage,
    config: &SiftConfig,
    isa: Isa,
    profile: &mut SiftProfile,
) -> Result<SiftFeatures> {
    let layers = config.n_octave_layers;
    let threads = config.threads;
    let start = Instant::now();
    let mut scratch = BlurScratch::default();
    let mut pool = POOL.with(|p| std::mem::replace(&mut *p.borrow_mut(), Pool(Vec::new())));
    // Pixel values in [0, 255] as OpenCV sees a uint8 image.
    let mut base = pool.take(image.pixels.len());
    for (b, v) in base.iter_mut().zip(image.pixels) {
        *b = v * 255.0;
    }
    let (mut w, mut h) = (image.width, image.height);
    // The doubled image is made in bands too, just ahead of the first level's blur.
    let (base_w, base_h) = (w, h);
    let init_sigma = if config.upsample {
        w *= 2;
        h *= 2;
        (config.sigma * config.sigma - 4.0 * INIT_SIGMA * INIT_SIGMA)
            .max(0.01)
            .sqrt()
    } else {
        (config.sigma * config.sigma - INIT_SIGMA * INIT_SIGMA)
            .max(0.01)
            .sqrt()
    };
    let init_kernel = gaussian_half_kernel(init_sigma);
    let n_octaves = octave_count(image.width, image.height, config.upsample);
    let kernels = level_kernels(config.sigma, layers);
    // Levels read only by the next level of their own octave (the doubled image, octave
    // 0's first level, the two above the last that carries keypoints) are ring buffers of
    // `ring` rows: in the banded loop a level is at most a band ahead of the one blurred
    // from it plus that blur's radius, so the rows still to be read are always the last
    // `2r + 2 BAND_ROWS` or fewer (an even count, for the doubled image's row pairs).
    let r_max = kernels
        .iter()
        .chain([&init_kernel])
        .map(|k| k.len() - 1)
        .max()
        .unwrap_or(0);
    let ring_rows = |h: usize| {
        let ring = 2 * r_max + 4 * BAND_ROWS;
        if ring >= h {
            h
        } else {
            ring
        }
    };
    // The doubled image: its height is even, and so is every ring.
    let doubled_ring = ring_rows(h);
    let mut doubled = config.upsample.then(|| pool.take(w * doubled_ring));
    let threshold = (0.5 * config.contrast_threshold / layers as f32 * 255.0).floor();
    let first_octave: i32 = if config.upsample { -1 } else { 0 };
    let unscale = if config.upsample { 0.5f32 } else { 1.0 };
    let shift = if config.upsample { 0.25f32 } else { 0.0 };

    let mut octaves: Vec<Octave> = Vec::with_capacity(n_octaves);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut found = Vec::new();
    let mut refined: Vec<Refined> = Vec::new();
    for o in 0..n_octaves {
        if w == 0 || h == 0 {
            break;
        }
        let start_octave = if o == 0 { start } else { Instant::now() };
        let mut gauss: Vec<Vec<f32>> = Vec::with_capacity(layers + 3);
        let ring = ring_rows(h);
        // Rows stored of each level: a ring, or the whole plane.
        let stored: Vec<usize> = (0..layers + 3)
            .map(|i| {
                if (i == 0 && o == 0) || i > layers {
                    ring
                } else {
                    h
                }
            })
            .collect();
        let mut g0 = pool.take(w * stored[0]);
        if o > 0 {
            let prev = &octaves[o - 1];
            let n = prev.width * prev.height;
            downsample2(
                &prev.gauss[layers][..n],
                prev.width,
                prev.height,
                &mut g0[..w * h],
            );
        }
        gauss.push(g0);
        // Levels 1.. and their DoG in row bands, each level a band behind the one it
        // blurs and the extrema scan a row behind the last: the rows in flight stay in
        // cache instead of whole planes going through memory.
        let levels = layers + 3;
        for &rows in &stored[1..] {
            gauss.push(pool.take(w * rows));
        }
        let mut dog: Vec<Vec<f32>> = (0..levels - 1).map(|_| pool.take(w * h)).collect();
        let mut done = vec![0usize; levels];
        // Octave 0 blurs its first level from the (doubled) image, band by band; the
        // others start from a whole level of the previous octave.
        done[0] = if o == 0 { 0 } else { h };
        let mut doubled_rows = if doubled.is_some() { 0 } else { h };
        let mut scanner = Scanner::new(w, levels - 1);
        let mut scan_time = Duration::ZERO;
        found.clear();
        while done[levels - 1] < h {
            if let (Some(d), true) = (doubled.as_mut(), doubled_rows < h) {
                let from = doubled_rows / 2;
                let to = (from + BAND_ROWS / 2).min(base_h);
                upsample2_rows(
                    &base[..base_w * base_h],
                    base_w,
                    base_h,
                    &mut d[..w * doubled_ring],
                    from..to,
                    doubled_ring,
                );
                doubled_rows = 2 * to;
            }
            if done[0] < h {
                let r = init_kernel.len() - 1;
                let ready = if doubled_rows >= h {
                    h
                } else {
                    doubled_rows.saturating_sub(r)
                };
                let upto = ready.min(done[0] + BAND_ROWS);
                if upto > done[0] {
                    let (src, src_ring) = match doubled.as_ref() {
                        Some(d) => (&d[..w * doubled_ring], doubled_ring),
                        None => (&base[..w * h], h),
                    };
                    gaussian_blur_rows(
                        isa,
                        src,
                        &mut gauss[0][..w * stored[0]],
                        w,
                        h,
                        &init_kernel,
                        &mut scratch,
                        None,
                        done[0]..upto,
                        (src_ring, stored[0]),
                    );
                    done[0] = upto;
                }
            }
            for i in 1..levels {
                let r = kernels[i - 1].len() - 1;
                let ready = if done[i - 1] >= h {
                    h
                } else {
                    done[i - 1].saturating_sub(r)
                };
                let upto = ready.min(done[i] + BAND_ROWS);
                if upto <= done[i] {
                    continue;
                }
                let (below, above) = gauss.split_at_mut(i);
                gaussian_blur_rows(
                    isa,
                    &below[i - 1][..w * stored[i - 1]],
                    &mut above[0][..w * stored[i]],
                    w,
                    h,
                    &kernels[i - 1],
                    &mut scratch,
                    Some(&mut dog[i - 1][..w * h]),
                    done[i]..upto,
                    (stored[i - 1], stored[i]),
                );
                done[i] = upto;
            }
            let t = Instant::now();
            let planes = Plane::all(&dog, w, h);
            scanner.advance(isa, &planes, done[levels - 1], threshold, &mut found);
            scan_time += t.elapsed();
        }
        let planes = Plane::all(&dog, w, h);
        let t_scan = Instant::now();
        profile.pyramid += t_scan - start_octave - scan_time;
        profile.extrema += scan_time;
        profile.extrema_found += found.len();
        refined.clear();
        let refine_one = |_: &mut (), &(layer, r, c): &(u32, u32, u32)| {
            refine(
                &planes,
                layer as usize,
                r as usize,
                c as usize,
                layers,
                config.contrast_threshold,
                config.edge_threshold,
            )
        };
        refined.extend(
            par_map(threads, &found, || (), refine_one)?
                .into_iter()
                .flatten(),
        );
        // Extrema refined onto the same sample are one keypoint (OpenCV removes the
        // duplicates by position, size and angle, which the same sample makes identical).
        refined.sort_by_key(|k| (k.layer, k.r, k.c));
        refined.dedup_by_key(|k| (k.layer, k.r, k.c));
        profile.extrema += t_scan.elapsed();
        let scale = (1u32 << o) as f32;
        for k in &refined {
            // The doubled octave samples the image at `x / 2 - 0.25` (OpenCV's resize), so
            // that is where its pixel `x` lies; OpenCV reports `x / 2` (0.25 px off).
            let x = (k.c as f32 + k.xc) * scale * unscale - shift;
            let y = (k.r as f32 + k.xr) * scale * unscale - shift;
            let size = config.sigma
                * 2f32.powf((k.layer as f32 + k.xi) / layers as f32)
                * scale
                * 2.0
                * unscale;
            let packed_octave = ((o as i32 + first_octave) & 255)
                | ((k.layer as i32) << 8)
                | (((k.xi + 0.5) * 255.0).round_ties_even() as i32) << 16;
            candidates.push(Candidate {
                octave: o,
                refined: *k,
                x,
                y,
                size,
                packed_octave,
            });
        }
        drop(planes);
        for d in dog {
            pool.give(d);
        }
        if o == 0 {
            if let Some(d) = doubled.take() {
                pool.give(d);
            }
            pool.give(std::mem::take(&mut base));
        }
        // Layers 1..=layers carry keypoints; layer `layers` also seeds the next octave.
        for l in [0, layers + 1, layers + 2] {
            pool.give(std::mem::take(&mut gauss[l]));
        }
        octaves.push(Octave {
            width: w,
            height: h,
            gauss,
        });
        w /= 2;
        h /= 2;
    }

    profile.candidates = candidates.len();
    let t_orient = Instant::now();
    // Strongest extrema first; orient until the cap (ties with the last kept included).
    candidates.sort_by(|a, b| {
        b.refined
            .response
            .total_cmp(&a.refined.response)
            .then(a.y.total_cmp(&b.y))
            .then(a.x.total_cmp(&b.x))
    });
    let mut kept: Vec<(SiftKeypoint, usize)> = Vec::new();
    let mut samples = OriScratch::default();
    let mut last_response = f32::INFINITY;
    let orient = |samples: &mut OriScratch, cand: &Candidate| {
        let oct = &octaves[cand.octave];
        let k = &cand.refined;
        let scl_octv = config.sigma * 2f32.powf((k.layer as f32 + k.xi) / layers as f32);
        let mut angles = Vec::new();
        orientations(
            isa,
            &oct.gauss[k.layer][..oct.width * oct.height],
            oct.width,
            oct.height,
            k.c,
            k.r,
            scl_octv,
            samples,
            &mut angles,
        );
        angles
    };
    // Candidates are oriented a batch at a time (on several threads when asked: at least
    // as many as keypoints are still missing) and taken in order until the cap is full; a
    // batch's orientations past that point are dropped unused.
    let mut next = 0;
    'cap: while next < candidates.len() {
        let missing = config.max_features.saturating_sub(kept.len());
        let batch = if threads <= 1 { 1 } else { missing.max(64) };
        let batch = &candidates[next..(next + batch).min(candidates.len())];
        let angles = if threads <= 1 {
            batch.iter().map(|c| orient(&mut samples, c)).collect()
        } else {
            par_map(threads, batch, OriScratch::default, orient)?
        };
        for (cand, angles) in batch.iter().zip(angles) {
            if kept.len() >= config.max_features && cand.refined.response < last_response {
                break 'cap;
            }
            profile.oriented += 1;
            for &angle in &angles {
                kept.push((
                    SiftKeypoint {
                        x: cand.x,
                        y: cand.y,
                        size: cand.size,
                        angle,
                        response: cand.refined.response,
                        octave: cand.packed_octave,
                    },
                    next,
                ));
            }
            if !angles.is_empty() {
                last_response = cand.refined.response;
            }
            next += 1;
        }
    }
    // Stable: the orientations of one extremum stay in histogram order.
    kept.sort_by(|(a, _), (b, _)| {
        b.response
            .total_cmp(&a.response)
            .then(a.y.total_cmp(&b.y))
            .then(a.x.total_cmp(&b.x))
    });
    kept.truncate(config.max_features);

    let t_describe = Instant::now();
    profile.orientation = t_describe - t_orient;
    // In plane order (octave, level, row), not rank order: the windows of neighbouring
    // keypoints share image rows, which then come from cache instead of memory.
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by_key(|&i| {
        let c = &candidates[kept[i].1];
        (c.octave, c.refined.layer, c.refined.r, c.refined.c)
    });
    let describe = |scratch: &mut DescScratch, &i: &usize| {
        let (kp, ci) = &kept[i];
        let cand = &candidates[*ci];
        let oct = &octaves[cand.octave];
        let k = &cand.refined;
        // OpenCV's unpackOctave: back to the octave's pixels from the keypoint's (a power
        // of two, exact; the position is the refined one in the octave's grid).
        let to_octave = if cand.octave as i32 + first_octave >= 0 {
            1.0 / (1u32 << (cand.octave as i32 + first_octave)) as f32
        } else {
            (1u32 << -(cand.octave as i32 + first_octave)) as f32
        };
        let mut ori = 360.0 - kp.angle;
        if (ori - 360.0).abs() < f32::EPSILON {
            ori = 0.0;
        }
        let mut raw = [0u8; DIM];
        raw_descriptor(
            isa,
            &oct.gauss[cand.refined.layer][..oct.width * oct.height],
            oct.width,
            oct.height,
            k.c as f32 + k.xc,
            k.r as f32 + k.xr,
            ori,
            kp.size * to_octave * 0.5,
            scratch,
            &mut raw,
        );
        let mut out = [0u8; DIM];
        root_sift(isa, &raw, &mut out);
        out
    };
    let mut descriptors = vec![0u8; kept.len() * DIM];
    let described = par_map(threads, &order, DescScratch::default, describe)?;
    for (&i, d) in order.iter().zip(&described) {
        descriptors[i * DIM..(i + 1) * DIM].copy_from_slice(d);
    }
    profile.descriptors = t_describe.elapsed();
    profile.total = start.elapsed();
    for oct in octaves {
        for g in oct.gauss {
            if g.capacity() > 0 {
                pool.give(g);
            }
        }
    }
    POOL.with(|p| *p.borrow_mut() = pool);
    Ok(SiftFeatures {
        keypoints: kept.into_iter().map(|(k, _)| k).collect(),
        descriptors,
    })
}
