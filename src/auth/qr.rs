//! QR codes as PNG, for the authenticator app's camera.

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::{EcLevel, QrCode};

use super::error::AuthError;

/// A PNG of at least 256×256 pixels (quiet zone included) encoding `data`.
pub fn png(data: &str) -> Result<Vec<u8>, AuthError> {
    let code =
        QrCode::with_error_correction_level(data, EcLevel::M).map_err(AuthError::internal)?;
    let image = code.render::<Luma<u8>>().min_dimensions(256, 256).build();
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, ImageFormat::Png)
        .map_err(AuthError::internal)?;
    Ok(png.into_inner())
}
