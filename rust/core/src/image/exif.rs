//! The one EXIF field the decoder needs: the orientation (tag 0x0112 of IFD0), read from
//! a TIFF structure (a JPEG's APP1 "Exif" payload after its header, a PNG's eXIf chunk),
//! every offset bounds-checked. Anything malformed reads as orientation 1 (as displayed),
//! which is what Pillow's `getexif()` gives for a broken block.

const ORIENTATION: u16 = 0x0112;
const SHORT: u16 = 3;

/// The EXIF orientation 1..=8 in `tiff` (which may start with `Exif\0\0`), else 1.
pub fn orientation(tiff: &[u8]) -> u8 {
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    read(tiff).filter(|o| (1..=8).contains(o)).unwrap_or(1)
}

fn read(t: &[u8]) -> Option<u8> {
    let big = match t.get(..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = t.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = t.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = usize::from(u16_at(ifd)?);
    for i in 0..entries {
        let entry = ifd.checked_add(2)?.checked_add(i.checked_mul(12)?)?;
        if u16_at(entry)? == ORIENTATION {
            if u16_at(entry + 2)? != SHORT {
                return None;
            }
            return u8::try_from(u16_at(entry + 8)?).ok();
        }
    }
    None
}

/// Whether the orientation swaps width and height (5-8).
pub fn swaps(orientation: u8) -> bool {
    (5..=8).contains(&orientation)
}

/// `pixels` (`width x height`, row-major) turned to its displayed orientation, as Pillow's
/// `ImageOps.exif_transpose`: `(pixels, width, height)` of the result.
pub fn apply(pixels: Vec<u8>, width: usize, height: usize, o: u8) -> (Vec<u8>, usize, usize) {
    if !(2..=8).contains(&o) {
        return (pixels, width, height);
    }
    let (ow, oh) = if swaps(o) {
        (height, width)
    } else {
        (width, height)
    };
    let (w, h) = (width, height);
    let mut out = vec![0u8; pixels.len()];
    for y in 0..oh {
        let row = &mut out[y * ow..(y + 1) * ow];
        for (x, px) in row.iter_mut().enumerate() {
            let (ix, iy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x), // 8
            };
            *px = pixels[iy * w + ix];
        }
    }
    (out, ow, oh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(big: bool, orientation: u16, kind: u16) -> Vec<u8> {
        let mut t = Vec::new();
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        t.extend_from_slice(if big { b"MM\0*" } else { b"II*\0" });
        t.extend_from_slice(&u32b(8));
        t.extend_from_slice(&u16b(2));
        // an unrelated tag first, then the orientation
        for (tag, value) in [(0x010Fu16, 7u16), (ORIENTATION, orientation)] {
            t.extend_from_slice(&u16b(tag));
            t.extend_from_slice(&u16b(if tag == ORIENTATION { kind } else { SHORT }));
            t.extend_from_slice(&u32b(1));
            t.extend_from_slice(&u16b(value));
            t.extend_from_slice(&[0, 0]);
        }
        t.extend_from_slice(&u32b(0));
        t
    }

    #[test]
    fn reads_both_byte_orders_and_the_exif_prefix() {
        for o in 1..=8u16 {
            assert_eq!(orientation(&tiff(false, o, SHORT)), o as u8);
            assert_eq!(orientation(&tiff(true, o, SHORT)), o as u8);
            let mut prefixed = b"Exif\0\0".to_vec();
            prefixed.extend(tiff(true, o, SHORT));
            assert_eq!(orientation(&prefixed), o as u8);
        }
    }

    #[test]
    fn malformed_blocks_read_as_upright() {
        assert_eq!(orientation(&tiff(false, 9, SHORT)), 1);
        assert_eq!(orientation(&tiff(false, 6, 4)), 1);
        assert_eq!(orientation(b""), 1);
        assert_eq!(orientation(b"II*\0\xff\xff\xff\xff"), 1);
        let full = tiff(false, 6, SHORT);
        // The orientation's value ends at byte 32: any shorter block reads as upright.
        for cut in 0..32 {
            let o = orientation(&full[..cut]);
            assert!(o == 1, "truncated at {cut}: {o}");
        }
        assert_eq!(orientation(&full[..32]), 6);
    }

    #[test]
    fn transposes_match_pillow_on_a_2x3_image() {
        // 0 1 2
        // 3 4 5
        let p: Vec<u8> = (0..6).collect();
        // Expected layouts from Pillow's exif_transpose (FLIP_LEFT_RIGHT, ROTATE_180,
        // FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90).
        let want: [(u8, &[u8], usize); 7] = [
            (2, &[2, 1, 0, 5, 4, 3], 3),
            (3, &[5, 4, 3, 2, 1, 0], 3),
            (4, &[3, 4, 5, 0, 1, 2], 3),
            (5, &[0, 3, 1, 4, 2, 5], 2),
            (6, &[3, 0, 4, 1, 5, 2], 2),
            (7, &[5, 2, 4, 1, 3, 0], 2),
            (8, &[2, 5, 1, 4, 0, 3], 2),
        ];
        for (o, expected, width) in want {
            let (got, w, h) = apply(p.clone(), 3, 2, o);
            assert_eq!(
                (got.as_slice(), w, h),
                (expected, width, 6 / width),
                "o={o}"
            );
        }
    }
}
