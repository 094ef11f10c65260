//! What every layer uses: host identity, backoff, a bounded worker pool, cancellation.

pub mod backoff;
pub mod host;
pub mod pool;

pub use backoff::Backoff;
pub use host::{host_name, ProcessIdentity};
pub use pool::parallel_map;
