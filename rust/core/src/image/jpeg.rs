//! JPEG decoding with libjpeg-turbo's decoder, the one Pillow (and OpenCV) use, so that
//! the pixels are Pillow's bit for bit: its islow IDCT, fancy upsampling, YCbCr -> RGB and
//! scaled IDCTs (1/2, 1/4, 1/8). The library is mozjpeg's copy of libjpeg-turbo's decoder,
//! compiled from source by `mozjpeg-sys` (C only); `jpeg.c` drives it as Pillow's
//! `JpegDecode.c` does and keeps libjpeg's `longjmp` error exits inside C. This module is
//! the safe API over that one C function: bytes in, a header or a decoded image out, every
//! failure a [`DecodeError`].

use std::ffi::{c_char, c_int, c_long, c_uint, c_ulong};

use super::DecodeError;

// The library itself: its objects are linked from this crate (nothing of its Rust API is
// used; `jpeg.c` calls it).
use mozjpeg_sys as _;

const MESSAGE: usize = 200;

/// `ir_jpeg` in `jpeg.c`: keep both in step.
#[repr(C)]
struct Job {
    scale_denom: c_uint,
    gray: c_int,
    max_memory: c_long,
    width: c_uint,
    height: c_uint,
    components: c_int,
    color_space: c_int,
    adobe: c_int,
    out_width: c_uint,
    out_height: c_uint,
    out_components: c_int,
    message: [c_char; MESSAGE],
}

extern "C" {
    fn ir_jpeg_run(
        data: *const u8,
        len: c_ulong,
        job: *mut Job,
        out: *mut u8,
        out_len: usize,
    ) -> c_int;
}

/// What a JPEG's headers declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
    /// Colour components (1 grey, 3 YCbCr or RGB, 4 CMYK or YCCK).
    pub components: usize,
    /// An Adobe APP14 marker was read (a CMYK JPEG's samples are then inverted).
    pub adobe: bool,
}

/// A decoded JPEG: `height` rows of `width * channels` samples (grey, RGB or CMYK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub pixels: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

fn corrupt(reason: String) -> DecodeError {
    DecodeError::Corrupt {
        format: "JPEG",
        reason,
    }
}

/// One call of `ir_jpeg_run`: the header into `job`, and the image into `out` if given.
fn run(bytes: &[u8], job: &mut Job, out: Option<&mut [u8]>) -> Result<(), DecodeError> {
    let len = c_ulong::try_from(bytes.len())
        .map_err(|_| corrupt(format!("{} bytes is more than libjpeg reads", bytes.len())))?;
    let (ptr, out_len) = match out {
        Some(buf) => (buf.as_mut_ptr(), buf.len()),
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: `bytes` is valid for `len` bytes and `out` (when not null) for `out_len`
    // bytes, both for the whole call; `job` is a valid, exclusively borrowed `ir_jpeg`
    // (same layout, `#[repr(C)]`). The C function writes only inside `out` (it checks
    // `out_len` against the decoded size first) and `job`, keeps no pointer after it
    // returns, and never unwinds: libjpeg's errors `longjmp` within C to its own `setjmp`.
    let status = unsafe { ir_jpeg_run(bytes.as_ptr(), len, job, ptr, out_len) };
    if status == 0 {
        return Ok(());
    }
    let message: Vec<u8> = job
        .message
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Err(corrupt(String::from_utf8_lossy(&message).into_owned()))
}

fn job(scale_denom: u32, gray: bool, max_memory: usize) -> Job {
    Job {
        scale_denom,
        gray: c_int::from(gray),
        max_memory: c_long::try_from(max_memory).unwrap_or(c_long::MAX),
        width: 0,
        height: 0,
        components: 0,
        color_space: 0,
        adobe: 0,
        out_width: 0,
        out_height: 0,
        out_components: 0,
        message: [0; MESSAGE],
    }
}

/// The declared size and colour of a JPEG, read from its headers (nothing is decoded and
/// no pixel buffer exists yet).
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let mut j = job(1, false, 0);
    run(bytes, &mut j, None)?;
    Ok(Header {
        width: j.width as usize,
        height: j.height as usize,
        components: usize::try_from(j.components).unwrap_or(0),
        adobe: j.adobe != 0,
    })
}

/// Decode a JPEG at `1 / scale_denom` (1, 2, 4 or 8: libjpeg's scaled IDCT), to grey when
/// `gray` (libjpeg's own conversion: a YCbCr image's luma, as Pillow's draft to "L"), else
/// to what its components give (grey, RGB, CMYK). `max_memory` bounds libjpeg's large
/// buffers (a progressive JPEG's coefficients); the caller checks the declared size first.
pub fn decode(
    bytes: &[u8],
    scale_denom: u32,
    gray: bool,
    max_memory: usize,
) -> Result<Decoded, DecodeError> {
    if ![1, 2, 4, 8].contains(&scale_denom) {
        return Err(corrupt(format!(
            "expected a DCT scale of 1, 2, 4 or 8, got {scale_denom}"
        )));
    }
    let mut j = job(scale_denom, gray, max_memory);
    run(bytes, &mut j, None)?;
    let (width, height) = (j.out_width as usize, j.out_height as usize);
    let channels = usize::try_from(j.out_components).unwrap_or(0);
    let len = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels))
        .filter(|&n| n > 0)
        .ok_or_else(|| corrupt(format!("cannot decode {width} x {height} x {channels}")))?;
    let mut pixels = vec![0u8; len];
    run(bytes, &mut j, Some(&mut pixels))?;
    Ok(Decoded {
        pixels,
        width,
        height,
        channels,
    })
}

/// The payload of a JPEG's first APP1 "Exif" segment before its first scan (what Pillow's
/// `getexif()` reads), if any; a malformed segment list ends the search.
pub fn exif(bytes: &[u8]) -> Option<&[u8]> {
    find_segment(bytes, |marker, body| {
        marker == 0xE1 && body.starts_with(b"Exif\0\0")
    })
    .map(|(_, body)| body)
}

/// The `(width, height)` a JPEG's first frame header declares, read by walking the
/// segments before any library sees the bytes (so that a bomb is refused on its header
/// alone, whatever follows it).
pub fn declared_size(bytes: &[u8]) -> Option<(usize, usize)> {
    // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
    let sof = |m: u8| (0xC0..=0xCF).contains(&m) && ![0xC4, 0xC8, 0xCC].contains(&m);
    let (_, body) = find_segment(bytes, |marker, body| sof(marker) && body.len() >= 5)?;
    let height = usize::from(u16::from_be_bytes([body[1], body[2]]));
    let width = usize::from(u16::from_be_bytes([body[3], body[4]]));
    Some((width, height))
}

/// The first segment before the first scan that `want(marker, body)` accepts.
fn find_segment(bytes: &[u8], want: impl Fn(u8, &[u8]) -> bool) -> Option<(u8, &[u8])> {
    let mut at = 2; // after SOI
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1; // fill bytes
        }
        let marker = *bytes.get(at)?;
        at += 1;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue, // no length
            0xD9 | 0xDA => return None,            // end of image, start of scan
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let body = bytes.get(at.checked_add(2)?..at.checked_add(len)?)?;
        if want(marker, body) {
            return Some((marker, body));
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_errors_not_crashes() {
        for bytes in [
            &b""[..],
            b"\xff\xd8",
            b"\xff\xd8\xff\xe0\x00\x10JFIF",
            b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00\xff\xd9",
        ] {
            assert!(
                matches!(header(bytes), Err(DecodeError::Corrupt { .. })),
                "{bytes:?}"
            );
            assert!(decode(bytes, 1, false, 0).is_err(), "{bytes:?}");
        }
        assert!(decode(b"\xff\xd8", 3, false, 0).is_err());
    }

    #[test]
    fn the_first_exif_segment_before_the_scan_is_read() {
        let seg = |m: u8, body: &[u8]| {
            let mut s = vec![0xFF, m];
            s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(body);
            s
        };
        let jpeg = [
            &[0xFF, 0xD8][..],
            &seg(0xE0, b"JFIF\0"),
            &seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0"),
            &seg(0xE1, b"Exif\0\0first"),
            &seg(0xE1, b"Exif\0\0second"),
        ]
        .concat();
        assert_eq!(exif(&jpeg), Some(&b"Exif\0\0first"[..]));
        let after_scan = [&[0xFF, 0xD8][..], &seg(0xDA, b"x"), &seg(0xE1, b"Exif\0\0")].concat();
        assert_eq!(exif(&after_scan), None);
        // A length running past the end, or garbage between segments, ends the search.
        assert_eq!(exif(&[0xFF, 0xD8, 0xFF, 0xE1, 0x40, 0x00, b'E']), None);
        assert_eq!(exif(&[0xFF, 0xD8, 0x12, 0xFF, 0xE1]), None);
    }

    #[test]
    fn the_declared_size_is_the_frame_headers() {
        let sof = [
            0xFF, 0xC2, 0x00, 0x0B, 0x08, 0x01, 0x2C, 0xEA, 0x60, 0x01, 0x01, 0x11, 0x00,
        ];
        let jpeg = [&[0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02][..], &sof].concat();
        assert_eq!(declared_size(&jpeg), Some((60_000, 300)));
        assert_eq!(declared_size(&jpeg[..jpeg.len() - 9]), None);
    }
}
