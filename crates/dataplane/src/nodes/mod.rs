//! The built-in node types.

mod params;
pub mod router;
mod slowpath;
pub mod switch;

pub use params::{check_keys, duration_param, int_param, param};
pub use slowpath::SlowPath;

use std::sync::Arc;

use crate::registry::NodeTypePlugin;

/// The built-in node types.
pub fn builtin() -> Vec<Arc<dyn NodeTypePlugin>> {
    vec![
        Arc::new(SlowPath),
        Arc::new(switch::L2SwitchType),
        Arc::new(switch::ExtMacSwitchType),
        Arc::new(router::RouterType),
    ]
}
