//! The data side of the live status URL: what each worker and each flusher
//! publishes, where they publish it, and the two answers made from it.
//!
//! - `board`: memory shared by all of lighttpd's processes (created before
//!   they fork), one slot per worker, read by whichever worker answers.
//! - `figures`: what a worker and a flusher publish, and its encoding.
//! - `live`: the worker's and the flusher's side of it in one process.
//! - `render`: the sums over all slots, as JSON and as Prometheus text.

pub mod board;
pub mod figures;
pub mod live;
pub mod render;

pub use self::live::{Format, Live};
pub use self::render::Header;
