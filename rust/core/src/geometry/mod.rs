//! Planar transforms between two images and their estimation from point pairs.

mod eigen;
mod fit;
mod plausibility;
mod transform;

pub use fit::{
    affine_from_frames, fit_affine, fit_homography, fit_similarity, homography_from_four,
};
pub use plausibility::is_plausible;
pub use transform::Transform;
