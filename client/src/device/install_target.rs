//! Where a verified image goes: an [`InstallTarget`] receives the image as a sequential
//! stream through an [`ImageWriter`], and is told to [`ImageWriter::complete`] it only after
//! every byte matched the signed length and sha256 (see [`super::InstallableImage`]).
//!
//! Three installers ship: [`super::FileInstaller`] (a regular file replaced atomically),
//! [`super::SlotInstaller`] (the inactive A/B slot, written in place, read back and hashed)
//! and [`super::HookInstaller`] (an integrator command fed on stdin).
use super::base::Base;
use super::error::DeviceResult;
use super::image::VerifiedImage;

/// A destination for verified images.
pub trait InstallTarget {
    /// The destination, for messages.
    fn describe(&self) -> String;

    /// Refuse, before anything else (even the metadata refresh), a destination that can take
    /// no image at all (not a file or block device, read-only, the running slot, ...).
    fn check_destination(&self) -> DeviceResult<()>;

    /// Refuse, before anything is downloaded or written, an image that cannot go here: the
    /// destination checks, and whether this image fits.
    fn check(&self, image: &VerifiedImage) -> DeviceResult<()>;

    /// The image a delta patch may use as its base, if this target has one.
    fn base(&self) -> Option<Base>;

    /// Start writing `image` (after [`InstallTarget::check`] passed).
    fn begin(&self, image: &VerifiedImage) -> DeviceResult<Box<dyn ImageWriter>>;
}

/// The writer of one image. Dropped without [`ImageWriter::complete`], it must leave the
/// destination's previous image in use (a temp file deleted, a hook told to abort; an
/// inactive slot may hold a partial image, which nothing boots).
pub trait ImageWriter: std::io::Write + Send {
    /// Called once the streamed bytes matched the signed image: make the image durable and,
    /// where the medium allows, read it back and compare it with `image` again.
    fn complete(self: Box<Self>, image: &VerifiedImage) -> DeviceResult<()>;
}
