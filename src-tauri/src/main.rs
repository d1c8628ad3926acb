//! `linli-app`, the desktop binary: everything is in the library (shared with Android).
// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    linli_app_lib::run();
}
