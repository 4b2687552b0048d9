//! uint8 nearest neighbours with Intel AMX-INT8 tiles (Sapphire Rapids and later).
//!
//! The dot products of 32 candidate rows x 32 query columns come from four `tdpbuud`
//! accumulators (unsigned x unsigned bytes, exact 32-bit sums), 64 descriptor bytes a step;
//! they are stored to a 4 KB buffer and folded into the reductions by the same AVX-512
//! code as the VNNI kernel ([`super::avx512::reduce_dots`]), in the same candidate order.
//! The result is therefore bit for bit the VNNI and portable kernels' result; only the
//! multiply-adds move to the tile unit (about 16x VNNI's multiply-adds a cycle).
//!
//! Rust has no stable AMX intrinsics or target feature, so the tile instructions are
//! inline assembly. They are only reached through an [`super::Isa`] of kind
//! `Avx512Amx`, which [`enable`] grants after checking the CPU (CPUID) and obtaining the
//! Linux kernel's permission for this process to use the tile registers
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`; without it the first tile instruction faults).
//!
//! Layout: candidates are read in place (A tiles: 16 rows x 64 bytes, stride `dim`); the
//! query is packed once ([`write_column`]): for each panel of 32 columns and each 64-byte
//! chunk of the descriptor, two B tiles of 16 rows x 64 bytes, row `k` holding bytes
//! `4k..4k + 4` of the chunk for each of 16 query columns.

use std::arch::asm;
use std::arch::x86_64::*;

use super::avx512::reduce_dots;
use super::nn_body::{reset_outputs, TileState};
use super::NnScratch;

/// Descriptor bytes one tile step reads (the depth of a `tdpbuud`).
pub(crate) const CHUNK: usize = 64;
/// Query columns per panel (two B tiles of 16).
const NR: usize = 32;
/// Candidate rows per block (two A tiles of 16).
const MR: usize = 32;
/// Bytes of one B tile.
const TILE_BYTES: usize = 1024;

/// `true` when this CPU has AMX-TILE and AMX-INT8 and the kernel lets this process use
/// them, unless `ILIAS_RERANK_NO_AMX` is set (to compare with the VNNI kernel). Called
/// once per process by `Isa::detect`.
pub(super) fn enable() -> bool {
    if std::env::var("ILIAS_RERANK_NO_AMX").is_ok_and(|v| !v.is_empty() && v != "0") {
        return false;
    }
    // Leaf 7 is only read when the maximum basic leaf says it exists.
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    let (tile, int8) = (edx >> 24 & 1 == 1, edx >> 25 & 1 == 1);
    tile && int8 && request_permission()
}

#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes reads or sets this process's permission for an
    // extended state component; it writes only to `granted`, a live u64.
    unsafe {
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) != 0
        {
            return false;
        }
        let mut granted: u64 = 0;
        let got = libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut granted as *mut u64,
        );
        got == 0 && granted >> XFEATURE_XTILEDATA & 1 == 1
    }
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// Whether the AMX kernel can take descriptors of dimension `dim` (whole 64-byte steps).
pub(crate) fn supports(dim: usize) -> bool {
    dim > 0 && dim.is_multiple_of(CHUNK)
}

/// Place query descriptor `row` at column `w` of its panel (`dim * 32` bytes: for each
/// 64-byte chunk two B tiles, see the module docs).
pub(crate) fn write_column(row: &[u8], panel: &mut [u8], w: usize) {
    let (half, n) = (w / 16, w % 16);
    for (c, chunk) in row.chunks_exact(CHUNK).enumerate() {
        let tile = (c * 2 + half) * TILE_BYTES;
        for (k, word) in chunk.chunks_exact(4).enumerate() {
            let at = tile + k * 64 + 4 * n;
            panel[at..at + 4].copy_from_slice(word);
        }
    }
}

/// The tile configuration: tmm0-3 accumulators (16 x 16 i32), tmm4-5 candidate rows
/// (16 x 64 bytes), tmm6-7 query panels (16 x 64 bytes); palette 1.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        for t in 0..8 {
            cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
            cfg[48 + t] = 16;
        }
        TileConfig(cfg)
    }
}

/// The 32 x 32 block of dot products, 128-byte rows (what the tiles store).
#[repr(C, align(64))]
struct Dots([[i32; NR]; MR]);

/// Nearest neighbours in both directions between AMX-packed query panels and `cand_len`
/// candidate rows of dimension `dim`; the same results as `nn_body` with any tile.
///
/// # Safety
/// Only call where AVX-512F/BW/VL, VNNI and FMA are present and [`enable`] returned
/// `true` in this process; `panels` must be packed by [`write_column`] with the same `dim` and
/// `query_norms.len()` padded columns, and `dim` must satisfy [`supports`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
pub(super) unsafe fn nn_amx(
    panels: &[u8],
    query_norms: &[f32],
    dim: usize,
    cand: &[u8],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    let padded = query_norms.len();
    reset_outputs(scratch, padded, cand_len);
    if cand_len == 0 || padded == 0 || !supports(dim) {
        return;
    }
    let chunks = dim / CHUNK;
    let npanels = padded / NR;
    assert!(panels.len() >= npanels * chunks * 2 * TILE_BYTES && cand.len() >= cand_len * dim);
    let (norm_groups, _) = query_norms.as_chunks::<NR>();
    // The last block's rows, zero-padded to 32 (A tiles always read 32 rows).
    let mut tail = std::mem::take(&mut scratch.block_u8);
    let mut dots = [Dots([[0; NR]; MR]), Dots([[0; NR]; MR])];
    let config = TileConfig::new();
    // SAFETY: the caller guarantees AMX is usable by this process; the configuration is a
    // live, aligned 64-byte block.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };

    for first in (0..cand_len).step_by(MR) {
        let rows = (cand_len - first).min(MR);
        let block: &[u8] = if rows == MR {
            &cand[first * dim..(first + MR) * dim]
        } else {
            tail.clear();
            tail.extend_from_slice(&cand[first * dim..(first + rows) * dim]);
            tail.resize(MR * dim, 0);
            &tail
        };
        let mut cand_norm = [f32::INFINITY; MR];
        for (r, row) in block.chunks_exact(dim).take(rows).enumerate() {
            let norm: u32 = row.iter().map(|&v| u32::from(v) * u32::from(v)).sum();
            cand_norm[r] = norm as f32;
            scratch.cand_norms[first + r] = norm as f32;
        }
        let mut cand_best = [[f32::INFINITY; NR]; MR];
        let mut cand_arg = [[u32::MAX; NR]; MR];
        // Software pipelined: the tiles compute panel p while the vector units reduce
        // panel p - 1 (two buffers), so the two units overlap.
        for p in 0..=npanels {
            if p < npanels {
                let span = chunks * 2 * TILE_BYTES;
                let panel = &panels[p * span..(p + 1) * span];
                // SAFETY: every tile load reads 16 rows of 64 bytes inside `block` (32
                // rows of `dim` bytes, stride `dim`) or `panel` (`chunks` pairs of 1 KB
                // tiles); the stores write 16 rows of 64 bytes inside `dots[p % 2]`.
                unsafe {
                    block_dots(
                        block.as_ptr(),
                        dim,
                        chunks,
                        panel.as_ptr(),
                        &mut dots[p % 2],
                    )
                };
            }
            if p == 0 {
                continue;
            }
            let (p, done) = (p - 1, &dots[(p - 1) % 2]);
            let lo = p * NR;
            let (best, _) = scratch.query_best[lo..lo + NR].as_chunks_mut::<NR>();
            let (second, _) = scratch.query_second[lo..lo + NR].as_chunks_mut::<NR>();
            let (arg, _) = scratch.query_arg[lo..lo + NR].as_chunks_mut::<NR>();
            let (cb_groups, _) = cand_best.as_chunks_mut::<8>();
            let (ca_groups, _) = cand_arg.as_chunks_mut::<8>();
            let (cn_groups, _) = cand_norm.as_chunks::<8>();
            // Row groups in order, so each query column sees the candidates in order.
            for g in 0..rows.div_ceil(8) {
                // SAFETY: AVX-512F/BW are enabled (this function's target features); the
                // loads read whole 32-lane rows of `done`.
                unsafe {
                    let mut acc = [[_mm512_setzero_si512(); 2]; 8];
                    for (r, a) in acc.iter_mut().enumerate() {
                        let row = done.0[8 * g + r].as_ptr();
                        *a = [
                            _mm512_loadu_si512(row.cast()),
                            _mm512_loadu_si512(row.add(16).cast()),
                        ];
                    }
                    reduce_dots(
                        acc,
                        None,
                        TileState {
                            cand_norm: &cn_groups[g],
                            query_norm: &norm_groups[p],
                            base: lo as u32,
                            first: (first + 8 * g) as u32,
                            rows: (rows - 8 * g).min(8),
                            cand_best: &mut cb_groups[g],
                            cand_arg: &mut ca_groups[g],
                            best: &mut best[0],
                            second: &mut second[0],
                            arg: &mut arg[0],
                        },
                    );
                }
            }
        }
        for r in 0..rows {
            let mut best = f32::INFINITY;
            let mut arg = u32::MAX;
            for w in 0..NR {
                let (v, i) = (cand_best[r][w], cand_arg[r][w]);
                if v < best || (v == best && i < arg) {
                    best = v;
                    arg = i;
                }
            }
            scratch.cand_best[first + r] = best;
            scratch.cand_arg[first + r] = arg;
        }
    }
    // SAFETY: releases the tile state configured above.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
    scratch.block_u8 = tail;
}

/// `dots = block(32 x dim) · panelᵀ(dim x 32)` with the configured tiles.
///
/// # Safety
/// Tiles configured by [`TileConfig`] in this thread; `block` points at 32 rows of `dim`
/// bytes, `panel` at `chunks` pairs of 1 KB B tiles, `dim == chunks * 64`.
#[inline(always)]
unsafe fn block_dots(
    block: *const u8,
    dim: usize,
    chunks: usize,
    panel: *const u8,
    dots: &mut Dots,
) {
    // SAFETY: see the function's contract; tmm0-7 are never used by compiled code.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for c in 0..chunks {
            let a = block.add(c * CHUNK);
            let b = panel.add(c * 2 * TILE_BYTES);
            asm!(
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm5, [{a2} + {s}*1]",
                "tileloadd tmm6, [{b} + {t}*1]",
                "tileloadd tmm7, [{b2} + {t}*1]",
                "tdpbuud tmm0, tmm4, tmm6",
                "tdpbuud tmm1, tmm4, tmm7",
                "tdpbuud tmm2, tmm5, tmm6",
                "tdpbuud tmm3, tmm5, tmm7",
                a = in(reg) a,
                a2 = in(reg) a.add(16 * dim),
                b = in(reg) b,
                b2 = in(reg) b.add(TILE_BYTES),
                s = in(reg) dim,
                t = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        let out = dots.0.as_mut_ptr().cast::<u8>();
        asm!(
            "tilestored [{o} + {s}*1], tmm0",
            "tilestored [{o1} + {s}*1], tmm1",
            "tilestored [{o2} + {s}*1], tmm2",
            "tilestored [{o3} + {s}*1], tmm3",
            o = in(reg) out,
            o1 = in(reg) out.add(64),
            o2 = in(reg) out.add(16 * 128),
            o3 = in(reg) out.add(16 * 128 + 64),
            s = in(reg) 128usize,
            options(nostack)
        );
    }
}
