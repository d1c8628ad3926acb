//! Builds the app: Tauri's code generation (context, permissions).
fn main() {
    tauri_build::build()
}
