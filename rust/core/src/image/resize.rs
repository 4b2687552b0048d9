//! Resampling of 8-bit grey images, bit-identical to Pillow's `Image.resize` (its
//! `Resample.c`: separable convolution, horizontal pass first into an 8-bit buffer, then
//! vertical; filter support widened by the scale when shrinking, so shrinking is
//! antialiased; coefficients in 22-bit fixed point). The Python path resizes with
//! BILINEAR when shrinking and BICUBIC when enlarging; matching it bit for bit keeps the
//! features of this backend those of the same image in the OpenCV backend's hands.

/// Pillow's resampling filters used by the extraction path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle, support 1.
    Bilinear,
    /// Keys cubic with a = -0.5, support 2.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output sample: first input index, tap count, and `ksize` fixed-point weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero; then clamped like Pillow.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let taps = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(taps) {
            let w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..xx * ksize + taps];
        for (dst, &w) in row.iter_mut().zip(&k[..taps]) {
            let w = if ww != 0.0 { w / ww } else { w };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            *dst = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, taps));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `pixels` (`width x height`) resized to `new_width x new_height` with `filter`, as
/// Pillow's `resize` of an "L" image. Pillow (12 and later) runs the vertical pass first
/// when the height shrinks by more than twice as many pixels as the width (so the
/// horizontal pass has fewer rows); the order changes the rounding of the 8-bit
/// intermediate, so it is followed here too.
pub fn resize(
    pixels: &[u8],
    width: usize,
    height: usize,
    new_width: usize,
    new_height: usize,
    filter: Filter,
) -> Vec<u8> {
    debug_assert_eq!(pixels.len(), width * height);
    if (width, height) == (new_width, new_height) {
        return pixels.to_vec();
    }
    let horiz = coeffs(width, new_width, filter);
    let vert = coeffs(height, new_height, filter);
    let (dw, dh) = (
        width as i64 - new_width as i64,
        height as i64 - new_height as i64,
    );
    if dh > 0 && dh > 2 * dw {
        // Vertical first, over every column; then horizontal over the new rows.
        let temp = vertical(pixels, width, &vert, 0);
        if new_width == width {
            return temp;
        }
        return horizontal(&temp, width, 0..new_height, new_width, &horiz);
    }
    // Horizontal first, over the rows the vertical pass reads.
    let (first, temp, temp_w) = if new_width != width {
        let first = vert.bounds.first().map_or(0, |b| b.0);
        let last = vert.bounds.last().map_or(height, |b| b.0 + b.1);
        let temp = horizontal(pixels, width, first..last, new_width, &horiz);
        (first, temp, new_width)
    } else {
        (0, pixels.to_vec(), width)
    };
    if new_height == height {
        return temp;
    }
    vertical(&temp, temp_w, &vert, first)
}

/// Pillow's horizontal pass: rows `rows` of `pixels` (`width` wide) to `new_width`.
fn horizontal(
    pixels: &[u8],
    width: usize,
    rows: std::ops::Range<usize>,
    new_width: usize,
    horiz: &Coeffs,
) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let mut temp = vec![0u8; new_width * rows.len()];
    for (y, out_row) in rows.zip(temp.chunks_exact_mut(new_width)) {
        let row = &pixels[y * width..(y + 1) * width];
        for (xx, out) in out_row.iter_mut().enumerate() {
            let (xmin, taps) = horiz.bounds[xx];
            let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + taps];
            let mut acc = half;
            for (&p, &w) in row[xmin..xmin + taps].iter().zip(k) {
                acc += i32::from(p) * w;
            }
            *out = clip8(acc);
        }
    }
    temp
}

/// Pillow's vertical pass: `pixels` (`width` wide, its first row being source row
/// `first`) to `vert.bounds.len()` rows.
fn vertical(pixels: &[u8], width: usize, vert: &Coeffs, first: usize) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; width * vert.bounds.len()];
    let mut acc = vec![0i32; width];
    for (yy, out_row) in out.chunks_exact_mut(width).enumerate() {
        let (ymin, taps) = vert.bounds[yy];
        let k = &vert.weights[yy * vert.ksize..yy * vert.ksize + taps];
        acc.fill(half);
        for (t, &w) in k.iter().enumerate() {
            let y = ymin + t - first;
            let row = &pixels[y * width..(y + 1) * width];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_image_stays_constant() {
        let p = vec![77u8; 37 * 23];
        for (w, h) in [(10, 7), (37, 5), (80, 50), (3, 23)] {
            for f in [Filter::Bilinear, Filter::Bicubic] {
                let r = resize(&p, 37, 23, w, h, f);
                assert_eq!(r.len(), w * h);
                assert!(r.iter().all(|&v| v == 77), "{w}x{h} {f:?}");
            }
        }
    }

    #[test]
    fn matches_pillow_bit_for_bit() {
        // Expected values from Pillow 13's Image.resize on the same arrays.
        let row: Vec<u8> = vec![0, 0, 80, 80, 160, 160, 240, 240];
        assert_eq!(
            resize(&row, 8, 1, 4, 1, Filter::Bilinear),
            vec![11, 80, 160, 229]
        );
        let b: Vec<u8> = vec![
            95, 130, 194, 217, 207, 235, 15, 163, 33, 215, 217, 130, 248, 189, 16, 69, 184, 232,
            205, 78, 169, 61, 125, 10, 29, 240, 66, 19, 182, 39, 59, 4, 59, 81, 222,
        ];
        assert_eq!(
            resize(&b, 7, 5, 3, 2, Filter::Bilinear),
            vec![111, 190, 166, 84, 98, 116]
        );
        let up: Vec<u8> = vec![
            87, 107, 143, 180, 205, 217, 214, 224, 242, 99, 0, 120, 106, 107, 177, 215, 216, 190,
            200, 248, 142, 51, 173, 102, 45, 171, 232, 216, 151, 156, 250, 215, 171, 106, 66, 46,
            170, 236, 235, 181, 154, 174, 192, 202, 12, 32, 77, 156, 210, 232, 225, 172, 82, 125,
            175, 20, 62, 110, 86, 86, 119, 216, 209, 71, 56, 69, 69, 99, 116, 33, 0, 18, 171, 207,
            78, 35, 26, 156, 116, 60, 46, 22, 4, 76, 108, 76, 124, 167, 203, 124, 28, 56, 43, 2,
            25, 52, 75, 176, 250,
        ];
        assert_eq!(resize(&b, 7, 5, 11, 9, Filter::Bicubic), up);
    }

    /// Pillow 13's `Image.resize((5, 4), BILINEAR)` of the 12 x 6 ramp below.
    const PILLOW_6X12_TO_5X4: [u8; 20] = [
        119, 120, 122, 143, 105, 137, 138, 141, 108, 111, 103, 128, 124, 119, 144, 138, 139, 157,
        133, 111,
    ];

    #[test]
    fn the_pass_order_is_pillows() {
        // 6 x 12 -> 5 x 4: the height shrinks by 8 > 2 * 1 pixels, so Pillow 13 runs the
        // vertical pass first; horizontal-first rounding would give other values here.
        let p: Vec<u8> = (0..72u32).map(|i| ((i * 97 + 31) % 256) as u8).collect();
        let got = resize(&p, 6, 12, 5, 4, Filter::Bilinear);
        let h_first = vertical(
            &horizontal(&p, 6, 0..12, 5, &coeffs(6, 5, Filter::Bilinear)),
            5,
            &coeffs(12, 4, Filter::Bilinear),
            0,
        );
        assert_eq!(got, PILLOW_6X12_TO_5X4.to_vec());
        assert_ne!(got, h_first);
    }
}
