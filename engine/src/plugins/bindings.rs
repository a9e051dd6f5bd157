//! Host bindings generated from `wit/lumire-plugin-0.3.0`, whose feature world imports the 0.1.0
//! interfaces (`types`, `storage`, `events`, `config`, `log`) and the 0.2.0 ones (`files`,
//! `records`, `ledger`, `http-client`) unchanged and adds `transaction`. One linker with every
//! interface of the three versions therefore links components built against any of them: an
//! older feature plugin imports a subset of what a 0.3.0 one does, and all export the same
//! functions over the same 0.1.0 types. Connectors keep the 0.2.0 `platform-connector` world.

mod feature {
    wasmtime::component::bindgen!({
        path: "../wit/lumire-plugin-0.3.0",
        world: "lumire:plugin/feature-plugin@0.3.0",
        imports: { default: async },
        exports: { default: async },
    });
}

mod connector_world {
    wasmtime::component::bindgen!({
        path: "../wit/lumire-plugin-0.2.0",
        world: "lumire:plugin/platform-connector@0.2.0",
        imports: { default: async },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "lumire:plugin/types@0.1.0": super::feature::lumire::plugin0_1_0::types,
            "lumire:plugin/config@0.1.0": super::feature::lumire::plugin0_1_0::config,
            "lumire:plugin/log@0.1.0": super::feature::lumire::plugin0_1_0::log,
            "lumire:plugin/http-client@0.2.0": super::feature::lumire::plugin0_2_0::http_client,
        },
    });
}

pub use connector_world::exports::lumire::plugin0_2_0::connector;
pub use connector_world::{PlatformConnector, PlatformConnectorPre};
pub use feature::lumire::plugin0_1_0::{config, events, log, storage, types};
pub use feature::lumire::plugin0_2_0::{files, http_client, ledger, records};
pub use feature::lumire::plugin0_3_0::transaction;
pub use feature::{FeaturePlugin, FeaturePluginPre};
