//! The instruction set the SIMD code runs with, detected once per process: the one place
//! both families read it, the matching kernels ([`crate::kernels`]) and SIFT
//! ([`crate::sift`]). It depends on neither (it also asks Linux for the AMX tile state,
//! so that the kernels' AMX path needs nothing here from them).

use std::sync::OnceLock;

/// The instruction sets the SIMD code is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsaKind {
    /// `Avx512Vnni` plus AMX-INT8 tiles that the kernel lets this process use (Intel
    /// Sapphire Rapids and later; `ILIAS_RERANK_NO_AMX=1` stays on `Avx512Vnni`).
    Avx512Amx,
    /// x86-64 with AVX-512 (F, BW, VL), VNNI and FMA.
    Avx512Vnni,
    /// x86-64 with AVX-512 (F, BW, VL) and FMA.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// Anything else, or forced by `ILIAS_RERANK_FORCE_PORTABLE=1`.
    Portable,
}

/// The instruction set the kernels run with: a token that safe code can only obtain from
/// [`Isa::detect`] (what this CPU supports) or [`Isa::portable`] (plain Rust, everywhere).
/// Its variants are private, so no caller can claim AVX-512 or VNNI on a CPU without
/// them: the `unsafe` SIMD entry points rely on this.
///
/// ```compile_fail
/// // Naming an instruction set directly does not compile: only `detect` can vouch for it.
/// let _ = ilias_rerank_core::isa::Isa::Avx512Vnni;
/// ```
///
/// ```
/// // What safe code can do: ask the CPU, or choose the portable kernels.
/// use ilias_rerank_core::isa::Isa;
/// let names = ["avx512-amx", "avx512-vnni", "avx512", "avx2", "portable"];
/// assert!(names.contains(&Isa::detect().name()));
/// assert_eq!(Isa::portable().name(), "portable");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(IsaKind);

impl Isa {
    /// The best instruction set of this CPU, detected once per process.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let forced = std::env::var("ILIAS_RERANK_FORCE_PORTABLE")
                .map(|v| !v.is_empty() && v != "0")
                .unwrap_or(false);
            if forced {
                Isa::portable()
            } else {
                Isa(Self::detect_cpu())
            }
        })
    }

    /// The portable kernels (plain Rust): valid on every CPU.
    pub fn portable() -> Isa {
        Isa(IsaKind::Portable)
    }

    /// Every instruction set this process may run with, best first: [`Isa::detect`]'s and
    /// each one below it down to the portable code (to test that all agree bit for bit).
    pub fn available() -> Vec<Isa> {
        use IsaKind::*;
        let order = [Avx512Amx, Avx512Vnni, Avx512, Avx2, Portable];
        let best = Isa::detect().0;
        let first = order
            .iter()
            .position(|k| *k == best)
            .unwrap_or(order.len() - 1);
        order[first..].iter().map(|k| Isa(*k)).collect()
    }

    /// Whether this is one of the AVX-512 kinds (F, BW, VL and FMA at least).
    pub(crate) fn has_avx512(self) -> bool {
        matches!(
            self.0,
            IsaKind::Avx512Amx | IsaKind::Avx512Vnni | IsaKind::Avx512
        )
    }

    /// Whether AVX2 and FMA are there (every x86-64 kind but the portable one).
    pub(crate) fn has_avx2(self) -> bool {
        self.0 != IsaKind::Portable
    }

    #[cfg(target_arch = "x86_64")]
    fn detect_cpu() -> IsaKind {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                if amx_enable() {
                    IsaKind::Avx512Amx
                } else {
                    IsaKind::Avx512Vnni
                }
            } else {
                IsaKind::Avx512
            }
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            IsaKind::Avx2
        } else {
            IsaKind::Portable
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect_cpu() -> IsaKind {
        IsaKind::Portable
    }

    pub(crate) fn kind(self) -> IsaKind {
        self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            IsaKind::Avx512Amx => "avx512-amx",
            IsaKind::Avx512Vnni => "avx512-vnni",
            IsaKind::Avx512 => "avx512",
            IsaKind::Avx2 => "avx2",
            IsaKind::Portable => "portable",
        }
    }
}

/// `true` when this CPU has AMX-TILE and AMX-INT8 and the kernel lets this process use
/// them, unless `ILIAS_RERANK_NO_AMX` is set (to compare with the VNNI kernel). Called
/// once per process by [`Isa::detect`]; the AMX kernel is in `kernels/amx.rs`.
#[cfg(target_arch = "x86_64")]
fn amx_enable() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if std::env::var("ILIAS_RERANK_NO_AMX").is_ok_and(|v| !v.is_empty() && v != "0") {
        return false;
    }
    // SAFETY: CPUID exists on every x86-64 CPU (the intrinsics are safe from Rust 1.94 on;
    // the crate supports 1.89); leaf 7 is only read when the maximum basic leaf has it.
    #[allow(unused_unsafe)]
    let edx = unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        __cpuid_count(7, 0).edx
    };
    let (tile, int8) = (edx >> 24 & 1 == 1, edx >> 25 & 1 == 1);
    tile && int8 && amx_request_permission()
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn amx_request_permission() -> bool {
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

#[cfg(all(not(target_os = "linux"), target_arch = "x86_64"))]
fn amx_request_permission() -> bool {
    false
}
