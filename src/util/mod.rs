//! What every layer uses: host identity, backoff, a bounded worker pool, an ordered
//! pipeline, cancellation, process limits.

pub mod backoff;
pub mod cancel;
pub mod format;
pub mod host;
pub mod limits;
pub mod pipeline;
pub mod pool;

pub use backoff::Backoff;
pub use cancel::Cancel;
pub use format::human_bytes;
pub use host::{host_name, ProcessIdentity};
pub use pipeline::{ordered_pipeline, PipelineShape};
pub use pool::parallel_map;
