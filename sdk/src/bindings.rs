//! The wit-bindgen bindings of `wit/plugin.wit` (compiled for `wasm32` only).
//! Plugin authors never see these; [`crate::export!`] wires their type to them
//! through `crate::wasm_export`.

wit_bindgen::generate!({
    world: "plugin",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__weir_export_world",
    default_bindings_module: "weir_sdk::__private::bindings",
    runtime_path: "weir_sdk::__private::wit_bindgen::rt",
});
