//! Builds the core's one C file, `rust/core/src/image/jpeg.c`: the JPEG decode with
//! libjpeg-turbo's decoder, which `mozjpeg-sys` compiles from its vendored source (C only:
//! no nasm, no cmake) and whose headers it names in `DEP_JPEG_INCLUDE`.

fn main() {
    let shim = "rust/core/src/image/jpeg.c";
    println!("cargo:rerun-if-changed={shim}");
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    let include = std::env::var_os("DEP_JPEG_INCLUDE")
        .expect("mozjpeg-sys names its headers in DEP_JPEG_INCLUDE");
    let mut build = cc::Build::new();
    for dir in std::env::split_paths(&include) {
        build.include(dir);
    }
    build.file(shim).warnings(true).compile("ilias_jpeg");
}
