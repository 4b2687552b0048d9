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
use super::rows::Rows;
use super::{GrayImage, SiftConfig, SiftFeatures, SiftKeypoint};
use crate::error::Result;
use crate::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Where the time of one [`extract_sift_profiled`](super::extract_sift_profiled) call went
/// (wall clock of the calling thread; with several threads the scan time is the first
/// band's), and how many extrema each stage saw.
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

/// Fewest rows of an octave a thread makes on its own when one image runs on several
/// threads (a smaller octave stays on one): each band recomputes up to about 50 halo rows
/// on each side.
const MIN_BAND_ROWS: usize = 96;

/// Rows `own` of the plane `rest[i]` (taken from its front; the rest stays for the next
/// band) with the halo rows of `span` outside them in `extra`.
fn split_rows<'b>(
    rest: &mut [&'b mut [f32]],
    i: usize,
    own: &Range<usize>,
    span: &Range<usize>,
    extra: &'b mut [f32],
    w: usize,
) -> Rows<&'b mut [f32]> {
    let plane = std::mem::take(&mut rest[i]);
    let (mine, others) = plane.split_at_mut(own.len() * w);
    rest[i] = others;
    let halo = span.len() - own.len();
    Rows::split(mine, own.clone(), &mut extra[..halo * w], span.clone(), w)
}

/// What every band of an octave shares (read-only).
struct OctaveSpec<'a> {
    isa: Isa,
    width: usize,
    height: usize,
    layers: usize,
    /// Octave 0: the image (`[0, 255]`) and its width and height.
    base: Option<(&'a [f32], usize, usize)>,
    /// Octave 0 with the doubled image: the rows of its ring.
    doubled_ring: Option<usize>,
    /// Other octaves: level 0, whole.
    g0: Option<&'a [f32]>,
    init_kernel: &'a [f32],
    kernels: &'a [Vec<f32>],
    threshold: f32,
}

/// One thread's rows of an octave: it makes its own rows of the whole levels and DoG, the
/// halo rows next to them that its scan needs, and scans its own rows.
struct Band<'a> {
    own: Range<usize>,
    /// Rows of each level (0..layers + 3) this band makes.
    spans: Vec<Range<usize>>,
    doubled: Option<&'a mut [f32]>,
    level0: Option<Rows<&'a mut [f32]>>,
    /// Levels 1..layers + 3.
    levels: Vec<Rows<&'a mut [f32]>>,
    dog: Vec<Rows<&'a mut [f32]>>,
    found: Vec<(u32, u32, u32)>,
    scan_time: Duration,
}

/// The banded pyramid of one band: within it, each level is made `BAND_ROWS` at a time a
/// band behind the level it blurs and the extrema scan a row behind the last level, so the
/// rows in flight stay in cache instead of whole planes going through memory.
fn run_band(spec: &OctaveSpec, band: &mut Band, scratch: &mut BlurScratch) {
    let (isa, w, h) = (spec.isa, spec.width, spec.height);
    let levels = spec.layers + 3;
    let spans = &band.spans;
    let mut done: Vec<usize> = spans.iter().map(|s| s.start).collect();
    if spec.g0.is_some() {
        done[0] = spans[0].end;
    }
    let r0 = spec.init_kernel.len() - 1;
    // The doubled image's rows (even), from the first the level 0 blur reads.
    let doubled_end = (spans[0].end + r0).min(h).next_multiple_of(2);
    let mut doubled_rows = match &band.doubled {
        Some(_) => spans[0].start.saturating_sub(r0) & !1,
        None => h,
    };
    let mut scanner = Scanner::new(w, h, levels - 1, band.own.clone());
    band.found.clear();
    while done[levels - 1] < spans[levels - 1].end {
        if let (Some(d), Some(ring), Some((base, bw, bh))) =
            (band.doubled.as_deref_mut(), spec.doubled_ring, spec.base)
        {
            if doubled_rows < doubled_end {
                let from = doubled_rows / 2;
                let to = (from + BAND_ROWS / 2).min(bh);
                upsample2_rows(base, bw, bh, d, from..to, ring);
                doubled_rows = 2 * to;
            }
        }
        if done[0] < spans[0].end {
            let ready = if doubled_rows >= h {
                h
            } else {
                doubled_rows.saturating_sub(r0)
            };
            let upto = ready.min(done[0] + BAND_ROWS).min(spans[0].end);
            if upto > done[0] {
                let src = match (&band.doubled, spec.base) {
                    (Some(d), _) => Rows::ring(&d[..], w),
                    (None, Some((base, _, _))) => Rows::whole(base, w),
                    (None, None) => unreachable!("level 0 is made only in octave 0"),
                };
                gaussian_blur_rows(
                    isa,
                    &src,
                    band.level0.as_mut().expect("octave 0 has a level 0 ring"),
                    w,
                    h,
                    spec.init_kernel,
                    scratch,
                    None,
                    done[0]..upto,
                );
                done[0] = upto;
            }
        }
        for i in 1..levels {
            let r = spec.kernels[i - 1].len() - 1;
            let ready = if done[i - 1] >= spans[i - 1].end {
                spans[i].end
            } else {
                done[i - 1].saturating_sub(r)
            };
            let upto = ready.min(done[i] + BAND_ROWS).min(spans[i].end);
            if upto <= done[i] {
                continue;
            }
            let (below, above) = band.levels.split_at_mut(i - 1);
            let src = match i {
                1 => match (&band.level0, spec.g0) {
                    (Some(l0), _) => l0.view(),
                    (None, Some(g0)) => Rows::whole(g0, w),
                    (None, None) => unreachable!("level 0 is a ring or whole"),
                },
                _ => below[i - 2].view(),
            };
            gaussian_blur_rows(
                isa,
                &src,
                &mut above[0],
                w,
                h,
                &spec.kernels[i - 1],
                scratch,
                Some(&mut band.dog[i - 1]),
                done[i]..upto,
            );
            done[i] = upto;
        }
        let t = Instant::now();
        let dog: Vec<Rows<&[f32]>> = band.dog.iter().map(|d| d.view()).collect();
        scanner.advance(isa, &dog, done[levels - 1], spec.threshold, &mut band.found);
        band.scan_time += t.elapsed();
    }
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
        let ring = ring_rows(h);
        let levels = layers + 3;
        // Level 0: octave 0 blurs it from the (doubled) image, band by band, into a ring
        // per band; the others downsample it whole from the previous octave.
        let g0 = (o > 0).then(|| {
            let prev = &octaves[o - 1];
            let n = prev.width * prev.height;
            let mut g0 = pool.take(w * h);
            downsample2(
                &prev.gauss[layers][..n],
                prev.width,
                prev.height,
                &mut g0[..w * h],
            );
            g0
        });
        // Levels 1..=layers and the DoG are whole planes (refinement, orientations and
        // descriptors read them later); the two above are rings of each band.
        let mut whole: Vec<Vec<f32>> = (1..=layers).map(|_| pool.take(w * h)).collect();
        let mut dog: Vec<Vec<f32>> = (0..levels - 1).map(|_| pool.take(w * h)).collect();
        // One band of rows a thread (the halo rows it needs recomputed on its own), if the
        // octave is tall enough for the halos to cost little.
        let bands = if threads >= 2 && h >= threads * MIN_BAND_ROWS {
            threads
        } else {
            1
        };
        let own: Vec<Range<usize>> = (0..bands)
            .map(|t| h * t / bands..h * (t + 1) / bands)
            .collect();
        // Rows of level i a band needs beyond its own: one for the scan's neighbours at
        // the top level, then each level's blur radius more below it.
        let mut halo = vec![1usize; levels];
        for i in (0..levels - 1).rev() {
            halo[i] = halo[i + 1] + kernels[i].len() - 1;
        }
        let spans: Vec<Vec<Range<usize>>> = own
            .iter()
            .map(|own| {
                halo.iter()
                    .map(|&hl| own.start.saturating_sub(hl)..(own.end + hl).min(h))
                    .collect()
            })
            .collect();
        // Each band's private buffers: the doubled image's ring (octave 0), level 0's ring
        // (octave 0), the two top levels' rings, then the halo rows of the whole levels
        // and of the DoG.
        let mut private: Vec<Vec<Vec<f32>>> = spans
            .iter()
            .zip(&own)
            .map(|(span, own)| {
                let mut bufs = Vec::with_capacity(2 * levels + 2);
                bufs.push(if o == 0 && config.upsample {
                    pool.take(w * doubled_ring)
                } else {
                    Vec::new()
                });
                bufs.push(if o == 0 {
                    pool.take(w * ring)
                } else {
                    Vec::new()
                });
                for _ in layers + 1..levels {
                    bufs.push(pool.take(w * ring));
                }
                for i in (1..=layers).chain(1..levels) {
                    let extra = span[i].len() - own.len();
                    bufs.push(if extra > 0 {
                        pool.take(w * extra)
                    } else {
                        Vec::new()
                    });
                }
                bufs
            })
            .collect();
        let spec = OctaveSpec {
            isa,
            width: w,
            height: h,
            layers,
            base: (o == 0).then(|| (&base[..base_w * base_h], base_w, base_h)),
            doubled_ring: (o == 0 && config.upsample).then_some(doubled_ring),
            g0: g0.as_deref().map(|g| &g[..w * h]),
            init_kernel: &init_kernel,
            kernels: &kernels,
            threshold,
        };
        let mut jobs: Vec<Band> = Vec::with_capacity(bands);
        {
            let mut whole_rest: Vec<&mut [f32]> =
                whole.iter_mut().map(|p| &mut p[..w * h]).collect();
            let mut dog_rest: Vec<&mut [f32]> = dog.iter_mut().map(|p| &mut p[..w * h]).collect();
            for ((own, span), bufs) in own.iter().zip(&spans).zip(&mut private) {
                let mut bufs = bufs.iter_mut();
                let doubled = bufs.next().map(|b| &mut b[..]).filter(|b| !b.is_empty());
                let doubled = doubled.map(|b| &mut b[..w * doubled_ring]);
                let level0 = bufs
                    .next()
                    .filter(|b| !b.is_empty())
                    .map(|b| &mut b[..w * ring]);
                let mut upper = vec![];
                for _ in layers + 1..levels {
                    upper.push(Rows::ring(&mut bufs.next().unwrap()[..w * ring], w));
                }
                let mut lv: Vec<Rows<&mut [f32]>> = (1..=layers)
                    .map(|i| {
                        split_rows(
                            &mut whole_rest,
                            i - 1,
                            own,
                            &span[i],
                            bufs.next().unwrap(),
                            w,
                        )
                    })
                    .collect();
                lv.extend(upper);
                let dg: Vec<Rows<&mut [f32]>> = (1..levels)
                    .map(|i| {
                        split_rows(&mut dog_rest, i - 1, own, &span[i], bufs.next().unwrap(), w)
                    })
                    .collect();
                jobs.push(Band {
                    own: own.clone(),
                    spans: span.clone(),
                    doubled,
                    level0: level0.map(|b| Rows::ring(b, w)),
                    levels: lv,
                    dog: dg,
                    found: Vec::new(),
                    scan_time: Duration::ZERO,
                });
            }
        }
        if bands == 1 {
            run_band(&spec, &mut jobs[0], &mut scratch);
        } else {
            crate::threads::install(threads, || {
                jobs.par_iter_mut()
                    .for_each(|job| run_band(&spec, job, &mut BlurScratch::default()))
            })?;
        }
        found.clear();
        let scan_time = jobs[0].scan_time;
        for job in jobs {
            found.extend(job.found);
        }
        for bufs in private {
            for b in bufs {
                if b.capacity() > 0 {
                    pool.give(b);
                }
            }
        }
        let mut gauss: Vec<Vec<f32>> = Vec::with_capacity(levels);
        gauss.push(g0.unwrap_or_default());
        gauss.extend(whole);
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
            pool.give(std::mem::take(&mut base));
        }
        // Layers 1..=layers carry keypoints; layer `layers` also seeds the next octave.
        let g0 = std::mem::take(&mut gauss[0]);
        if g0.capacity() > 0 {
            pool.give(g0);
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
