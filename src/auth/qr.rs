//! QR codes as PNG, for the authenticator app's camera.

use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, EcLevel, Version, bits, ec};

use super::error::AuthError;

/// The mask every code is drawn with. Choosing the best of the eight masks
/// (what `QrCode::new` does) scores eight full canvases and took two thirds
/// of a setup's CPU; it only avoids rare blotches in arbitrary data, and an
/// otpauth URI carries a random secret. Readers decode any mask (the
/// mask's number is in the format bits).
const MASK: MaskPattern = MaskPattern::Checkerboard;

/// Modules of blank border around a (non-micro) QR code, as the standard asks.
const QUIET_ZONE: usize = 4;

/// Smallest side of the image, in pixels.
const MIN_PIXELS: usize = 256;

/// A PNG of at least 256×256 pixels (quiet zone included) encoding `data`:
/// one bit per pixel (black and white is all a QR code has; eight times
/// less to filter, compress and base64 than 8-bit gray).
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

    let side_modules = width + 2 * QUIET_ZONE;
    let scale = MIN_PIXELS.div_ceil(side_modules);
    let side = side_modules * scale;
    let row_bytes = side.div_ceil(8);
    // Grayscale at one bit: 1 is white, 0 is black; rows padded to bytes.
    // Each row of modules is drawn once, then copied `scale` times.
    let mut pixels = vec![0xff_u8; row_bytes * side];
    for (module_y, module_row) in modules.chunks_exact(width).enumerate() {
        let first = (QUIET_ZONE + module_y) * scale * row_bytes;
        let row = &mut pixels[first..first + row_bytes];
        for (module_x, _) in module_row
            .iter()
            .enumerate()
            .filter(|(_, color)| **color == Color::Dark)
        {
            let left = (QUIET_ZONE + module_x) * scale;
            for x in left..left + scale {
                row[x / 8] &= !(0x80 >> (x % 8));
            }
        }
        for copy in 1..scale {
            pixels.copy_within(first..first + row_bytes, first + copy * row_bytes);
        }
    }

    let side = u32::try_from(side).map_err(AuthError::internal)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::NoFilter);
    let mut writer = encoder.write_header().map_err(AuthError::internal)?;
    writer
        .write_image_data(&pixels)
        .map_err(AuthError::internal)?;
    writer.finish().map_err(AuthError::internal)?;
    Ok(out)
}
