//! The slow-path node type: a namespace sliver.

use netslice_model::types::{NodeDecl, NodeTypeInfo, ParamError};

use super::params::check_keys;
use crate::program::{NodeInstance, NodeProgram};
use crate::registry::{InstantiateError, NodeTypePlugin};

/// A namespace sliver running any program (the seed's slow path). The agent
/// builds it; there is no packet program.
#[derive(Debug, Clone, Copy)]
pub struct SlowPath;

impl NodeTypePlugin for SlowPath {
    fn info(&self) -> NodeTypeInfo {
        NodeTypeInfo {
            name: "slowpath".into(),
            description: "a network namespace sliver (with cgroup limits) running any program; `slice exec` enters it"
                .into(),
            fast_path: false,
            params: Vec::new(),
        }
    }

    fn check(&self, node: &NodeDecl<'_>) -> Vec<ParamError> {
        check_keys(node.params, &[])
    }

    fn instantiate(&self, _: &NodeInstance) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError> {
        Ok(None)
    }
}
