//! uint8 nearest neighbours with Intel AMX-INT8 tiles (Sapphire Rapids and later).
//!
//! One panel of 32 query columns at a time stays in four tile registers (two 64-byte
//! chunks of the descriptor x two halves of 16 columns) while the candidates stream past
//! 16 rows at a time: two `tdpbuud` accumulators (unsigned x unsigned bytes, exact 32-bit
//! sums) give their 16 x 32 dot products, stored to a 2 KB buffer and folded into both
//! nearest-neighbour reductions with AVX-512 while the tiles compute the next 16 rows.
//! Each query column sees the candidates in order and each candidate the query columns in
//! order, with the same arithmetic (`norm - 2·dot`, rounded once) and tie rules (lowest
//! index) as every other kernel: the result is theirs bit for bit.
//!
//! Rust has no stable AMX intrinsics or target feature, so the tile instructions are
//! inline assembly. The query panel stays in tmm4-7 across several `asm!` blocks and the
//! Rust code between them: sound because no compiled code (ours, the standard library's
//! or libc's) touches tile registers, although `asm!` does not promise it; every call
//! configures the tiles first and releases them last. They are only reached through an [`crate::isa::Isa`] of kind
//! `Avx512Amx`, which `Isa::detect` grants after checking the CPU (CPUID) and obtaining the
//! Linux kernel's permission for this process to use the tile registers
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`; without it the first tile instruction faults).
//!
//! Layout: candidates are read in place (A tiles: 16 rows x 64 bytes, stride `dim`); the
//! query is packed once ([`write_column`]): for each panel of 32 columns and each 64-byte
//! chunk of the descriptor, two B tiles of 16 rows x 64 bytes, row `k` holding bytes
//! `4k..4k + 4` of the chunk for each of 16 query columns.

use std::arch::asm;
use std::arch::x86_64::*;

use super::nn_body::reset_outputs;
use super::packing::u8_squared_norm;
use super::NnScratch;

/// Descriptor bytes one tile step reads (the depth of a `tdpbuud`).
pub(crate) const CHUNK: usize = 64;
/// Query columns per panel (two B tiles of 16).
const NR: usize = 32;
/// Candidate rows per step (one A tile per chunk).
const MR: usize = 16;
/// Bytes of one B tile.
const TILE_BYTES: usize = 1024;

/// Whether the AMX kernel can take descriptors of dimension `dim`: one or two whole
/// 64-byte chunks (a panel's B tiles must fit the four tile registers left).
pub(crate) fn supports(dim: usize) -> bool {
    dim == CHUNK || dim == 2 * CHUNK
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

/// The tile configuration: tmm0-1 accumulators (16 x 16 i32), tmm2-3 candidate rows
/// (16 x 64 bytes, one per chunk), tmm4-7 the query panel (16 x 64 bytes: chunk 0 halves
/// 0 and 1, chunk 1 halves 0 and 1); palette 1.
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

/// 64 bytes on a cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [u8; 64]);

impl Line {
    /// The lines as one byte slice.
    fn bytes(lines: &[Line]) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes with no padding (size 64, align 64), so the
        // lines are `64 * len` initialised bytes, borrowed for as long as `lines`.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), 64 * lines.len()) }
    }
}

/// 16 candidate rows x 32 query columns of dot products, 128-byte rows.
#[repr(C, align(64))]
struct Dots([[i32; NR]; MR]);

/// Query-side state of one panel, in registers: per column the best and second-best
/// `|c|² - 2 q·c` and the best candidate (halves of 16 columns).
struct QueryState {
    best: [__m512; 2],
    second: [__m512; 2],
    arg: [__m512i; 2],
}

/// Nearest neighbours in both directions between AMX-packed query panels and `cand_len`
/// candidate rows of dimension `dim`; the same results as `nn_body` with any tile.
///
/// # Safety
/// Only call where AVX-512F/BW/VL, VNNI and FMA are present and [`enable`] returned
/// `true` in this process; `panels` must be packed by [`write_column`] with the same
/// `dim` and `query_norms.len()` padded columns (a multiple of 32).
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
    let span = chunks * 2 * TILE_BYTES;
    let npanels = padded / NR;
    assert!(panels.len() >= npanels * span && cand.len() >= cand_len * dim);
    for (norm, row) in scratch.cand_norms.iter_mut().zip(cand.chunks_exact(dim)) {
        *norm = u8_squared_norm(row);
    }
    // The candidates read in place when their rows start on cache lines and fill whole
    // steps; else copied, zero-padded to whole steps (A tiles always read 16 rows), into
    // 64-byte aligned lines (a row split over two lines costs two loads).
    let steps = cand_len.div_ceil(MR);
    let mut lines = std::mem::take(&mut scratch.block_lines);
    let rows: &[u8] = if cand_len == steps * MR && cand.as_ptr().align_offset(64) == 0 {
        &cand[..cand_len * dim]
    } else {
        let bytes = steps * MR * dim;
        lines.clear();
        lines.resize(bytes / 64, Line([0; 64]));
        for (line, src) in lines.iter_mut().zip(cand[..cand_len * dim].chunks(64)) {
            line.0[..src.len()].copy_from_slice(src);
        }
        Line::bytes(&lines)
    };
    let mut dots = [Dots([[0; NR]; MR]), Dots([[0; NR]; MR])];
    let config = TileConfig::new();
    // SAFETY: the caller guarantees AMX is usable by this process; the configuration is a
    // live, aligned 64-byte block.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
    for p in 0..npanels {
        // SAFETY: the panel holds `chunks` pairs of 1 KB tiles (asserted above).
        unsafe { load_panel(panels[p * span..].as_ptr(), chunks) };
        let base = (p * NR) as u32;
        let qn = [
            _mm512_loadu_ps(query_norms[p * NR..].as_ptr()),
            _mm512_loadu_ps(query_norms[p * NR + 16..].as_ptr()),
        ];
        let mut state = QueryState {
            best: [_mm512_set1_ps(f32::INFINITY); 2],
            second: [_mm512_set1_ps(f32::INFINITY); 2],
            arg: [_mm512_set1_epi32(-1); 2],
        };
        // Software pipelined: the tiles compute step s while the vector units reduce
        // step s - 1 (two buffers).
        for s in 0..=steps {
            if s < steps {
                // SAFETY: the step's 16 rows of `dim` bytes lie inside `rows`; the
                // stores write 16 rows of 128 bytes inside `dots[s % 2]`.
                unsafe { step_dots(rows[s * MR * dim..].as_ptr(), dim, chunks, &mut dots[s % 2]) };
            }
            if s > 0 {
                let first = (s - 1) * MR;
                let real = (cand_len - first).min(MR);
                reduce_step(
                    &dots[(s - 1) % 2],
                    first,
                    real,
                    base,
                    qn,
                    scratch,
                    &mut state,
                );
            }
        }
        let lo = p * NR;
        for h in 0..2 {
            _mm512_storeu_ps(
                scratch.query_best[lo + 16 * h..].as_mut_ptr(),
                state.best[h],
            );
            _mm512_storeu_ps(
                scratch.query_second[lo + 16 * h..].as_mut_ptr(),
                state.second[h],
            );
            let arg = scratch.query_arg[lo + 16 * h..].as_mut_ptr();
            _mm512_storeu_si512(arg.cast(), state.arg[h]);
        }
    }
    // SAFETY: releases the tile state configured above.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
    scratch.block_lines = lines;
}

/// Fold one step's dot products (rows `first..first + real` of the candidates, the
/// panel's 32 columns from `base`) into both reductions.
///
/// # Safety
/// Only call where AVX-512F/BW/VL are present (from `nn_amx`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn reduce_step(
    dots: &Dots,
    first: usize,
    real: usize,
    base: u32,
    qn: [__m512; 2],
    scratch: &mut NnScratch,
    state: &mut QueryState,
) {
    // SAFETY: the loads read whole 32-lane rows of `dots`.
    unsafe {
        let two = _mm512_set1_ps(2.0);
        for (r, row) in dots.0.iter().enumerate().take(real) {
            let j = first + r;
            let dot = [
                _mm512_cvtepi32_ps(_mm512_loadu_si512(row.as_ptr().cast())),
                _mm512_cvtepi32_ps(_mm512_loadu_si512(row.as_ptr().add(16).cast())),
            ];
            // Candidate side: the smallest `|q|² - 2 q·c` of the panel and its lowest
            // column, kept if strictly better than the earlier (lower) columns'.
            let v = [
                _mm512_fnmadd_ps(two, dot[0], qn[0]),
                _mm512_fnmadd_ps(two, dot[1], qn[1]),
            ];
            // Most panels improve on no earlier one: one compare says so.
            let both = _mm512_min_ps(v[0], v[1]);
            let known = _mm512_set1_ps(scratch.cand_best[j]);
            if _mm512_cmp_ps_mask::<_CMP_LT_OQ>(both, known) != 0 {
                let least = _mm512_reduce_min_ps(both);
                let at = _mm512_set1_ps(least);
                let lo = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v[0], at) as u32;
                let hi = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v[1], at) as u32;
                scratch.cand_best[j] = least;
                scratch.cand_arg[j] = base + (lo | hi << 16).trailing_zeros();
            }
            // Query side, as `reduce_dots`.
            let cn = _mm512_set1_ps(scratch.cand_norms[j]);
            let jv = _mm512_set1_epi32(j as i32);
            for (h, &dot) in dot.iter().enumerate() {
                let v = _mm512_fnmadd_ps(two, dot, cn);
                let better = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, state.best[h]);
                state.second[h] = _mm512_min_ps(state.second[h], v);
                state.second[h] = _mm512_mask_mov_ps(state.second[h], better, state.best[h]);
                state.best[h] = _mm512_min_ps(state.best[h], v);
                state.arg[h] = _mm512_mask_mov_epi32(state.arg[h], better, jv);
            }
        }
    }
}

/// Load one query panel into tmm4-7 (tmm6-7 only when `chunks == 2`).
///
/// # Safety
/// Tiles configured by [`TileConfig`] in this thread; `panel` points at `chunks` pairs of
/// 1 KB B tiles.
#[inline(always)]
unsafe fn load_panel(panel: *const u8, chunks: usize) {
    // SAFETY: see the function's contract; tmm0-7 are never used by compiled code.
    unsafe {
        asm!(
            "tileloadd tmm4, [{b} + {t}*1]",
            "tileloadd tmm5, [{b1} + {t}*1]",
            b = in(reg) panel,
            b1 = in(reg) panel.add(TILE_BYTES),
            t = in(reg) 64usize,
            options(nostack, readonly)
        );
        if chunks == 2 {
            asm!(
                "tileloadd tmm6, [{b} + {t}*1]",
                "tileloadd tmm7, [{b1} + {t}*1]",
                b = in(reg) panel.add(2 * TILE_BYTES),
                b1 = in(reg) panel.add(3 * TILE_BYTES),
                t = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
    }
}

/// `dots = rows(16 x dim) · panelᵀ(dim x 32)` with the panel loaded by [`load_panel`].
///
/// # Safety
/// Tiles configured by [`TileConfig`] and the panel loaded in this thread; `rows` points
/// at 16 rows of `dim == chunks * 64` bytes.
#[inline(always)]
unsafe fn step_dots(rows: *const u8, dim: usize, chunks: usize, dots: &mut Dots) {
    // SAFETY: see the function's contract; tmm0-7 are never used by compiled code.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tileloadd tmm2, [{a} + {s}*1]",
            "tdpbuud tmm0, tmm2, tmm4",
            "tdpbuud tmm1, tmm2, tmm5",
            a = in(reg) rows,
            s = in(reg) dim,
            options(nostack, readonly)
        );
        if chunks == 2 {
            asm!(
                "tileloadd tmm3, [{a} + {s}*1]",
                "tdpbuud tmm0, tmm3, tmm6",
                "tdpbuud tmm1, tmm3, tmm7",
                a = in(reg) rows.add(CHUNK),
                s = in(reg) dim,
                options(nostack, readonly)
            );
        }
        let out = dots.0.as_mut_ptr().cast::<u8>();
        asm!(
            "tilestored [{o} + {s}*1], tmm0",
            "tilestored [{o1} + {s}*1], tmm1",
            o = in(reg) out,
            o1 = in(reg) out.add(64),
            s = in(reg) 128usize,
            options(nostack)
        );
    }
}
