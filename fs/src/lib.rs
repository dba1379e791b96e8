//! # ota-fs
//!
//! The file-system rules every part of the toolkit shares, implemented once:
//!
//! - [`atomic`]: the one crash-safe writer (temp file beside the destination, fsync, rename,
//!   fsync the directory). Readers see the old file or the complete new one.
//! - [`user_file`]: reading a file a user named (a key, a root, a firmware image, a recipient
//!   list) refuses anything but a regular file and caps how much is read, so a FIFO or a link
//!   to `/dev/zero` cannot hang or exhaust a tool.
//! - [`mode`]: the permissions of published files (readable by any web server user, whatever
//!   the umask) and of private ones.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod atomic;
pub mod mode;
pub mod user_file;
pub mod writeback;
