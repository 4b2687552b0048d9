//! Encoded image bytes to the grey working image a detector reads: JPEG and PNG decoded,
//! EXIF orientation applied, converted to grey and resized to the working size, exactly
//! as the Python path (`images.load_scaled` + `Extractor.prepare`) does with Pillow:
//!
//! - JPEGs are decoded by libjpeg-turbo's decoder ([`jpeg`]), Pillow's own, so the pixels
//!   are Pillow's bit for bit; one at least twice the working size on both sides is
//!   decoded at a reduced DCT scale (1/2, 1/4, 1/8: the largest that stays at least the
//!   working size, Pillow's `draft` rule), a colour one then straight to grey by libjpeg
//!   (as Pillow's draft to "L"), the rest in full;
//! - otherwise grey is Pillow's "L" (`(19595 R + 38470 G + 7471 B + 2^15) >> 16`); 16-bit
//!   PNG samples are scaled to 8 bits (`round(v / 257)`), never clipped;
//! - the resize is Pillow's, bit for bit ([`resize`]): BILINEAR (antialiased) when
//!   shrinking, BICUBIC when enlarging.
//!
//! Limits come before allocation: the declared size is read from the headers and an image
//! of more than [`Limits::max_pixels`] is refused before any pixel buffer exists.

pub mod exif;
pub mod jpeg;
pub mod pipeline;
pub mod resize;

use std::io::Cursor;

pub use resize::Filter;

/// Why an image could not be turned into a working image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Neither JPEG nor PNG.
    #[error("not a readable image (expected JPEG or PNG bytes, got {0})")]
    Unsupported(String),
    /// The bytes start like a JPEG or PNG but do not decode.
    #[error("cannot decode {format} ({reason})")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    /// The declared size is over the limit (refused before decoding).
    #[error("image too large: expected at most {limit} pixels, got {width} x {height}")]
    TooLarge {
        width: usize,
        height: usize,
        limit: u64,
    },
    /// A side of zero pixels.
    #[error("empty image: expected at least 1 x 1 pixels, got {width} x {height}")]
    Empty { width: usize, height: usize },
    /// Too thin to resize (the resize's coefficients grow with the longest side).
    #[error(
        "image too thin to resize: expected an aspect ratio of at most {MAX_ASPECT}:1, got {width} x {height}"
    )]
    TooThin { width: usize, height: usize },
}

/// Largest `longest side / shortest side` of an image that is resized (a 40,000,000 x 1
/// image would need coefficients in proportion to its 40,000,000 columns).
pub const MAX_ASPECT: usize = 1000;

/// Resource bounds of one decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `width * height` decoded (the declared, full-resolution size).
    pub max_pixels: u64,
}

impl Default for Limits {
    /// Pillow's `DecompressionBombError` threshold (`2 * Image.MAX_IMAGE_PIXELS`), so that
    /// both paths refuse the same images.
    fn default() -> Self {
        Limits {
            max_pixels: 2 * 89_478_485,
        }
    }
}

/// An 8-bit grey image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// The working size rule of the Python extractors (`Extractor.working_size`): the longest
/// side shrunk to `max_side`, never enlarged unless `upsample` (then images whose longest
/// side is at most `max_side / 2` are doubled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkingSize {
    pub max_side: usize,
    pub upsample: bool,
}

impl WorkingSize {
    /// Original pixels per working pixel.
    pub fn scale(&self, width: usize, height: usize) -> f64 {
        let longest = width.max(height);
        if longest > self.max_side {
            longest as f64 / self.max_side as f64
        } else if self.upsample && 2 * longest <= self.max_side {
            0.5
        } else {
            1.0
        }
    }

    /// The working size of a `width x height` image (Python's `round`: ties to even).
    pub fn of(&self, width: usize, height: usize) -> (usize, usize) {
        let s = self.scale(width, height);
        let side = |v: usize| ((v as f64 / s).round_ties_even() as usize).max(1);
        (side(width), side(height))
    }
}

/// A decoded image at the working size, and the full displayed size of the original.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Working {
    pub image: Gray,
    /// `(width, height)` of the original in its displayed orientation.
    pub original: (usize, usize),
}

/// Decode `bytes` (JPEG or PNG) to grey in its displayed orientation and resize it to
/// `size`: the whole path from encoded bytes to what the detector reads.
pub fn working_image(
    bytes: &[u8],
    size: &WorkingSize,
    limits: &Limits,
) -> Result<Working, DecodeError> {
    let (image, original) = decode_gray(bytes, Some(size), limits)?;
    resize_to_working(image, original, size)
}

/// Resize an already decoded grey image (in its displayed orientation, possibly decoded
/// at a reduced scale from an original of `original` size) to its working size. An image
/// that needs resizing and is thinner than [`MAX_ASPECT`] is refused before any buffer.
pub fn resize_to_working(
    image: Gray,
    original: (usize, usize),
    size: &WorkingSize,
) -> Result<Working, DecodeError> {
    let (new_w, new_h) = size.of(original.0, original.1);
    let image = if (new_w, new_h) == (image.width, image.height) {
        image
    } else {
        check_aspect(image.width, image.height)?;
        let shrink = new_w < image.width || new_h < image.height;
        let filter = if shrink {
            Filter::Bilinear
        } else {
            Filter::Bicubic
        };
        let pixels = resize::resize(
            &image.pixels,
            image.width,
            image.height,
            new_w,
            new_h,
            filter,
        );
        Gray {
            width: new_w,
            height: new_h,
            pixels,
        }
    };
    Ok(Working { image, original })
}

/// Decode `bytes` to grey, EXIF orientation applied: `(image, full displayed size)`.
/// With `reduce_for`, a JPEG at least twice its working size is decoded at a reduced DCT
/// scale (the image is then smaller than the full size, never smaller than the working
/// size), and an image it must resize thinner than [`MAX_ASPECT`] is refused unread.
pub fn decode_gray(
    bytes: &[u8],
    reduce_for: Option<&WorkingSize>,
    limits: &Limits,
) -> Result<(Gray, (usize, usize)), DecodeError> {
    let format = if bytes.starts_with(&[0xFF, 0xD8]) {
        "JPEG"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else {
        return Err(DecodeError::Unsupported(sniff(bytes)));
    };
    // The decoders are third-party code: a panic on odd bytes is that image's error.
    std::panic::catch_unwind(|| match format {
        "JPEG" => decode_jpeg(bytes, reduce_for, limits),
        _ => decode_png(bytes, reduce_for, limits),
    })
    .unwrap_or_else(|_| {
        Err(DecodeError::Corrupt {
            format,
            reason: "the decoder failed on these bytes".into(),
        })
    })
}

fn sniff(bytes: &[u8]) -> String {
    let known: [(&[u8], &str); 5] = [
        (b"GIF8", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"RIFF", "RIFF/WebP"),
    ];
    if bytes.is_empty() {
        return "0 bytes".into();
    }
    for (magic, name) in known {
        if bytes.starts_with(magic) {
            return name.into();
        }
    }
    format!(
        "{} bytes starting {:02x?}",
        bytes.len(),
        &bytes[..bytes.len().min(4)]
    )
}

fn check_size(width: usize, height: usize, limits: &Limits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Empty { width, height });
    }
    if (width as u64).saturating_mul(height as u64) > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// An image thinner than [`MAX_ASPECT`] is refused (when it must be resized).
fn check_aspect(width: usize, height: usize) -> Result<(), DecodeError> {
    if width.max(height) > width.min(height).saturating_mul(MAX_ASPECT) {
        return Err(DecodeError::TooThin { width, height });
    }
    Ok(())
}

/// [`check_aspect`] from the declared size, before decoding: only an image that its
/// working size resizes.
fn check_aspect_declared(
    width: usize,
    height: usize,
    size: Option<&WorkingSize>,
) -> Result<(), DecodeError> {
    match size {
        Some(s) if s.of(width, height) != (width, height) => check_aspect(width, height),
        _ => Ok(()),
    }
}

/// Pillow's RGB -> L.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// A 16-bit sample scaled to 8 bits (`round(v / 257)`).
#[inline]
fn scale16(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

fn rgb_to_gray(rgb: &[u8], step: usize) -> Vec<u8> {
    rgb.chunks_exact(step)
        .map(|p| luma(p[0], p[1], p[2]))
        .collect()
}

fn decode_jpeg(
    bytes: &[u8],
    reduce_for: Option<&WorkingSize>,
    limits: &Limits,
) -> Result<(Gray, (usize, usize)), DecodeError> {
    // The declared size is checked before libjpeg reads the headers, then again on what
    // libjpeg read.
    if let Some((w, h)) = jpeg::declared_size(bytes) {
        check_size(w, h, limits)?;
    }
    let head = jpeg::header(bytes)?;
    let (w, h) = (head.width, head.height);
    check_size(w, h, limits)?;
    check_aspect_declared(w, h, reduce_for)?;
    let orientation = jpeg::exif(bytes).map_or(1, exif::orientation);
    let swapped = exif::swaps(orientation);
    let full = if swapped { (h, w) } else { (w, h) };
    let mut scale = 1;
    if let Some(size) = reduce_for {
        let want = size.of(full.0, full.1);
        if full.0 >= 2 * want.0 && full.1 >= 2 * want.1 {
            let (rw, rh) = if swapped { (want.1, want.0) } else { want };
            // Pillow's draft: the largest of 8, 4, 2 not above the whole ratio.
            let ratio = (w / rw).min(h / rh);
            scale = [8, 4, 2, 1].into_iter().find(|&s| ratio >= s).unwrap_or(1);
        }
    }
    // Pillow's draft to "L" makes libjpeg decode a colour (3-component) JPEG to grey
    // itself, and only when it decodes at a reduced scale; in full it decodes RGB.
    let gray = scale > 1 && head.components == 3;
    // libjpeg's large buffers (a progressive JPEG's coefficients: ~2 bytes a sample).
    let max_memory = (limits.max_pixels as usize).saturating_mul(8);
    let d = jpeg::decode(bytes, scale as u32, gray, max_memory)?;
    let (dw, dh) = (d.width, d.height);
    if (dw, dh) != (w.div_ceil(scale), h.div_ceil(scale)) {
        return Err(DecodeError::Corrupt {
            format: "JPEG",
            reason: format!(
                "expected {} x {} pixels, got {dw} x {dh}",
                w.div_ceil(scale),
                h.div_ceil(scale)
            ),
        });
    }
    let pixels = match d.channels {
        1 => d.pixels,
        3 => rgb_to_gray(&d.pixels, 3),
        4 => d
            .pixels
            .chunks_exact(4)
            .map(|p| {
                // Pillow reads an Adobe CMYK JPEG as inverted ("CMYK;I"), then CMYK ->
                // RGB -> L.
                let inv = |v: u8| if head.adobe { 255 - v } else { v };
                let nk = 255 - u32::from(inv(p[3]));
                let ch = |c: u8| (nk - (u32::from(inv(c)) * nk + 127) / 255) as u8;
                luma(ch(p[0]), ch(p[1]), ch(p[2]))
            })
            .collect(),
        n => {
            return Err(DecodeError::Corrupt {
                format: "JPEG",
                reason: format!("expected 1, 3 or 4 colour components, got {n}"),
            })
        }
    };
    let (pixels, ow, oh) = exif::apply(pixels, dw, dh, orientation);
    Ok((
        Gray {
            width: ow,
            height: oh,
            pixels,
        },
        full,
    ))
}

fn decode_png(
    bytes: &[u8],
    resize_to: Option<&WorkingSize>,
    limits: &Limits,
) -> Result<(Gray, (usize, usize)), DecodeError> {
    let corrupt = |e: png::DecodingError| DecodeError::Corrupt {
        format: "PNG",
        reason: e.to_string(),
    };
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            // Its own buffers (a row, chunks); the frame is checked below.
            bytes: 64 << 20,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(w, h, limits)?;
    check_aspect_declared(w, h, resize_to)?;
    let orientation = reader
        .info()
        .exif_metadata
        .as_deref()
        .map_or(1, exif::orientation);
    // Row by row into grey: one byte a pixel at most, whatever the PNG's sample size (a
    // whole RGBA16 frame would be 8).
    let (color, depth) = reader.output_color_type();
    let channels = color.samples();
    let sample_bytes = match depth {
        png::BitDepth::Sixteen => 2,
        _ => 1,
    };
    let line = reader
        .output_line_size(w as u32)
        .ok_or(DecodeError::TooLarge {
            width: w,
            height: h,
            limit: limits.max_pixels,
        })?;
    let mut row = vec![0u8; line];
    let mut grey = Vec::with_capacity(w);
    let mut pixels = Vec::with_capacity(w * h);
    let interlaced = reader.info().interlaced;
    if interlaced {
        pixels.resize(w * h, 0);
    }
    while let Some(info) = reader.read_row(&mut row).map_err(corrupt)? {
        // An Adam7 row fills only its pass's samples; the rest of `row` is ignored by the
        // expansion (it stops at the pass's sample count).
        let n = w;
        let data = &row[..];
        let px = |i: usize, c: usize| -> u8 {
            let at = (i * channels + c) * sample_bytes;
            if sample_bytes == 2 {
                scale16(u16::from_be_bytes([data[at], data[at + 1]]))
            } else {
                data[at]
            }
        };
        grey.clear();
        grey.extend((0..n).map(|i| {
            if channels >= 3 {
                luma(px(i, 0), px(i, 1), px(i, 2))
            } else {
                px(i, 0) // grey, grey + alpha: the alpha is dropped as Pillow's "L"
            }
        }));
        match &info {
            png::InterlaceInfo::Adam7(a) => png::expand_interlaced_row(&mut pixels, w, &grey, a, 8),
            png::InterlaceInfo::Null(_) => pixels.extend_from_slice(&grey),
        }
    }
    let (fw, fh) = (w, h);
    if pixels.len() != fw * fh {
        return Err(DecodeError::Corrupt {
            format: "PNG",
            reason: format!("expected {} pixels, got {}", fw * fh, pixels.len()),
        });
    }
    let (pixels, ow, oh) = exif::apply(pixels, fw, fh, orientation);
    Ok((
        Gray {
            width: ow,
            height: oh,
            pixels,
        },
        (ow, oh),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_size_follows_the_python_rule() {
        let s = WorkingSize {
            max_side: 768,
            upsample: false,
        };
        assert_eq!(s.of(1024, 768), (768, 576));
        assert_eq!(s.of(500, 300), (500, 300));
        assert_eq!(s.of(3000, 1), (768, 1));
        let up = WorkingSize {
            max_side: 768,
            upsample: true,
        };
        assert_eq!(up.of(300, 200), (600, 400));
        assert_eq!(up.of(500, 300), (500, 300));
        // Ties round to even, as Python's round: 1000 * 768 / 1536 = 500 exactly;
        // 3 * 16 / 32 = 1.5 -> 2, 5 * 16 / 32 = 2.5 -> 2.
        let small = WorkingSize {
            max_side: 16,
            upsample: false,
        };
        assert_eq!(small.of(32, 3), (16, 2));
        assert_eq!(small.of(32, 5), (16, 2));
    }

    #[test]
    fn non_images_are_named_errors() {
        for (bytes, want) in [
            (&b""[..], "0 bytes"),
            (b"GIF89a....", "GIF"),
            (b"hello world", "11 bytes"),
        ] {
            let e = decode_gray(bytes, None, &Limits::default()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = decode_gray(b"\xff\xd8\xff\xe0garbage", None, &Limits::default()).unwrap_err();
        assert!(
            matches!(e, DecodeError::Corrupt { format: "JPEG", .. }),
            "{e}"
        );
        let e = decode_gray(b"\x89PNG\r\n\x1a\ngarbage", None, &Limits::default()).unwrap_err();
        assert!(
            matches!(e, DecodeError::Corrupt { format: "PNG", .. }),
            "{e}"
        );
    }

    /// A baseline JPEG's headers declaring `width x height` and no scan data after them.
    fn declared_jpeg(width: u16, height: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        // DQT (one table of 1s)
        b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
        b.extend_from_slice(&[1u8; 64]);
        // SOF0: precision 8, height, width, 1 component
        b.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        // SOS of that component (libjpeg reads the headers up to it), no scan data
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        b.extend_from_slice(&[0xFF, 0xD9]);
        b
    }

    #[test]
    fn bombs_are_refused_before_decoding() {
        for (w, h) in [(60_000u16, 60_000u16), (20_000, 20_000), (65_500, 2_740)] {
            let e = decode_gray(&declared_jpeg(w, h), None, &Limits::default()).unwrap_err();
            assert!(
                matches!(e, DecodeError::TooLarge { width, height, .. }
                    if width == usize::from(w) && height == usize::from(h)),
                "{w}x{h}: {e}"
            );
        }
        // Past libjpeg's largest side (65,500) it refuses the headers itself.
        let e = decode_gray(&declared_jpeg(65_535, 16), None, &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("65500"), "{e}");
        let e = decode_gray(
            &declared_jpeg(2000, 2000),
            None,
            &Limits { max_pixels: 1000 },
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn a_thin_image_is_refused_before_resizing_it() {
        let size = WorkingSize {
            max_side: 768,
            upsample: false,
        };
        let thin = |w: usize, h: usize| Gray {
            width: w,
            height: h,
            pixels: vec![0; w * h],
        };
        let e = resize_to_working(thin(1_000_001, 1), (1_000_001, 1), &size).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooThin {
                width: 1_000_001,
                height: 1
            }
        );
        assert!(e.to_string().contains("at most 1000:1"), "{e}");
        // 1000:1 is resized; a thin image that needs no resize is kept as it is.
        let w = resize_to_working(thin(10_000, 10), (10_000, 10), &size).unwrap();
        assert_eq!((w.image.width, w.image.height), (768, 1));
        let w = resize_to_working(thin(700, 1), (700, 1), &size).unwrap();
        assert_eq!((w.image.width, w.image.height), (700, 1));
    }
}
