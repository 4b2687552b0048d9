//! The decoder entry on arbitrary bytes: never a panic, never more memory than the limit
//! allows (libFuzzer's -rss_limit_mb catches an unbounded allocation); on success the
//! working image is the working size of the declared original.
#![no_main]

use ilias_rerank_core::image::{working_image, Limits, WorkingSize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the working size; the rest is the file. A smaller pixel limit
    // than the default keeps each run fast (the limit itself is what is exercised).
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let size = WorkingSize {
        max_side: 16 + usize::from(pick & 0x7F) * 4,
        upsample: pick & 0x80 != 0,
    };
    let limits = Limits {
        max_pixels: 1 << 22,
    };
    if let Ok(w) = working_image(bytes, &size, &limits) {
        let (ow, oh) = w.original;
        assert!(ow >= 1 && oh >= 1 && (ow as u64) * (oh as u64) <= limits.max_pixels);
        assert_eq!((w.image.width, w.image.height), size.of(ow, oh));
        assert_eq!(w.image.pixels.len(), w.image.width * w.image.height);
    }
});
