//! openraft's own storage conformance suite, run against the redb log and state machine.
//!
//! The suite encodes the invariants openraft relies on (vote monotonicity, truncate and purge
//! bounds, membership recovery, snapshot transfer); passing it is what makes it safe to hand
//! these stores to the consensus core.

use std::sync::Arc;

use openraft::StorageError as OpenraftStorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;

use super::db;
use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::TypeConfig;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), OpenraftStorageError<TypeConfig>> {
        let dir = tempfile::tempdir()
            .map_err(|e| OpenraftStorageError::read(TypeConfig::err_from_error(&e)))?;
        let files = db::open(dir.path())
            .map_err(|e| OpenraftStorageError::read(TypeConfig::err_from_error(&e)))?;
        let sm = StateMachine::open(Arc::clone(&files.sm))
            .map_err(|e| OpenraftStorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, LogStore::new(files.log), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_stores_pass_the_openraft_suite() {
    // Why: openraft's safety depends on these exact storage semantics.
    Suite::test_all(RedbBuilder).await.unwrap();
}
