//! Run-time multiversioning for the SIFT kernels: each hot loop is written once as plain,
//! auto-vectorisable Rust (`#[inline(always)]`) and compiled three times — AVX-512, AVX2
//! and portable — by [`multiversion!`]; [`crate::isa::Isa`] picks one at run time. The
//! arithmetic of every element is the same sequence of IEEE operations in all three (Rust
//! never contracts `a * b + c`; where a kernel fuses it says `f32::mul_add`, one rounding on
//! every ISA: the portable build calls `fmaf`), so the results agree bit for bit
//! (`tests/sift.rs` checks it on every ISA this CPU has).

/// `multiversion!(fn name(args) -> ret = body_fn);` defines `name(isa, args)` that calls
/// `body_fn(args)` compiled for the best of AVX-512 / AVX2 / portable that `isa` allows.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$meta])*
        $vis fn $name(isa: crate::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn with_avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if isa.has_avx512() {
                    // SAFETY: `isa` comes from `Isa::detect` (or is below it), which vouches
                    // for AVX-512 F/BW/VL and FMA on this CPU.
                    return unsafe { with_avx512($($arg),*) };
                }
                if isa.has_avx2() {
                    // SAFETY: as above, for AVX2 and FMA.
                    return unsafe { with_avx2($($arg),*) };
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = isa;
            $body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
