//! Host bindings generated from `wit/lumire-plugin-0.1.0` (world `feature-plugin`).
//! A later package version gets a module of its own next to this one.

wasmtime::component::bindgen!({
    path: "../wit/lumire-plugin-0.1.0",
    world: "feature-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use lumire::plugin::types;
