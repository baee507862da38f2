//! Temporary harness for tests/it/docker_image.rs (removed once tests/it/main.rs exists).
#[path = "it/docker_image.rs"]
mod docker_image;
