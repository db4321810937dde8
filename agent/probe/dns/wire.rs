//! The real wire.
#[derive(Debug, Default)]
pub struct NetWire {}
impl super::walk::Wire for NetWire {}
