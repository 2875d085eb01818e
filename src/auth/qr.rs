//! QR codes as PNG, for the authenticator app's camera.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, Luma};
use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::render::Renderer;
use qrcode::{EcLevel, Version, bits, ec};

use super::error::AuthError;

/// The mask every code is drawn with. Choosing the best of the eight masks
/// (what `QrCode::new` does) scores eight full canvases and took two thirds
/// of a setup's CPU; it only avoids rare blotches in arbitrary data, and an
/// otpauth URI carries a random secret. Readers decode any mask (the
/// mask's number is in the format bits).
const MASK: MaskPattern = MaskPattern::Checkerboard;

/// Modules of blank border around a (non-micro) QR code, as the standard asks.
const QUIET_ZONE: u32 = 4;

/// A PNG of at least 256×256 pixels (quiet zone included) encoding `data`.
pub fn png(data: &str) -> Result<Vec<u8>, AuthError> {
    let ec_level = EcLevel::M;
    let bits = bits::encode_auto(data.as_bytes(), ec_level).map_err(AuthError::internal)?;
    let version = bits.version();
    // Only normal codes have the quiet zone above (encode_auto never picks
    // a micro one, which authenticator apps could not read anyway).
    let Version::Normal(_) = version else {
        return Err(AuthError::internal("encode_auto chose a micro QR code"));
    };
    let width = usize::try_from(version.width()).map_err(AuthError::internal)?;
    let (data_codewords, ec_codewords) =
        ec::construct_codewords(&bits.into_bytes(), version, ec_level)
            .map_err(AuthError::internal)?;
    let mut canvas = Canvas::new(version, ec_level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data_codewords, &ec_codewords);
    canvas.apply_mask(MASK);
    let modules = canvas.into_colors();
    let image = Renderer::<Luma<u8>>::new(&modules, width, QUIET_ZONE)
        .min_dimensions(256, 256)
        .build();
    let mut png = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::NoFilter)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(AuthError::internal)?;
    Ok(png.into_inner())
}
