// Re-run the build when a migration changes, or embed_migrations! misses it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
