//! The procedural scene of `make_opencv_fixture.py`, byte for byte: rectangles and disks
//! of LCG-drawn positions, sizes and grey levels on grey, then a 3x3 box filter (integer
//! arithmetic only, so Python and Rust draw the same bytes). Shared by `tests/sift.rs` and
//! `benches/sift.rs`.

/// A `width x height` grey scene of `shapes` shapes (row-major bytes); `noise` > 0 adds
/// LCG noise of ± `noise` grey levels before the box filter (photo-like texture: no flat
/// areas, whose float-rounding ripples would make most pixels DoG extrema).
pub fn scene(width: usize, height: usize, shapes: usize, noise: i64) -> Vec<u8> {
    let mut state: u64 = 12345;
    let mut draw = |n: u64| -> i64 {
        state = (state * 1103515245 + 12345) % (1 << 31);
        ((state >> 8) % n) as i64
    };
    let (w, h) = (width as i64, height as i64);
    let mut img = vec![110i64; width * height];
    for _ in 0..shapes {
        let (kind, cx, cy) = (draw(2), draw(width as u64), draw(height as u64));
        let (size, grey) = (3 + draw(28), draw(256));
        let (x0, x1) = ((cx - size).max(0), (cx + size).min(w - 1));
        let (y0, y1) = ((cy - size).max(0), (cy + size).min(h - 1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                let inside = if kind == 0 {
                    (x - cx).abs() <= size && (y - cy).abs() <= size * 2 / 3
                } else {
                    (x - cx) * (x - cx) + (y - cy) * (y - cy) <= size * size
                };
                if inside {
                    img[(y * w + x) as usize] = grey;
                }
            }
        }
    }
    if noise > 0 {
        for v in img.iter_mut() {
            *v = (*v + draw(2 * noise as u64 + 1) - noise).clamp(0, 255);
        }
    }
    let at = |x: i64, y: i64| img[(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize];
    let mut out = vec![0u8; width * height];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    s += at(x + dx, y + dy);
                }
            }
            out[(y * w + x) as usize] = (s / 9) as u8;
        }
    }
    out
}
