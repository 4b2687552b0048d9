//! The instruction set the kernels run with, detected once at run time. Packing and
//! dispatch both read it; it depends on neither.

use std::sync::OnceLock;

/// The instruction sets the kernels are compiled for.
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
/// let _ = ilias_rerank_core::kernels::Isa::Avx512Vnni;
/// ```
///
/// ```
/// // What safe code can do: ask the CPU, or choose the portable kernels.
/// use ilias_rerank_core::kernels::Isa;
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

    #[cfg(target_arch = "x86_64")]
    fn detect_cpu() -> IsaKind {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                if super::amx::enable() {
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

    /// Query columns per packed panel (two vector registers wide).
    pub(crate) fn panel_width(self) -> usize {
        match self.0 {
            IsaKind::Avx512Amx | IsaKind::Avx512Vnni | IsaKind::Avx512 => 32,
            IsaKind::Avx2 | IsaKind::Portable => 16,
        }
    }
}
